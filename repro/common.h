/* Shared by the reproducers in this directory.  Build one with
 *   gcc -Iinclude repro/NAME.c build/libcrew.a -lxxhash -lpthread
 * from the top of the tree; each prints "ok" or "BUG" (exit status 1). */
#define _GNU_SOURCE
#include <crew.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); exit(2); } } while (0)
static inline double now_s(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static inline void alarm_after(unsigned s) { alarm(s); }
