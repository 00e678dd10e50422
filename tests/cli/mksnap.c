/*
 * mksnap.c -- `mksnap FILE N`: a snapshot holding N bytes of a known
 * pattern (byte i is (i * 7) & 255), allocated first in the arena and made
 * its root, for the crew run tests (whose datasum they can check from the
 * file alone).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crew.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mksnap FILE N\n");
        return 2;
    }
    char *end;
    unsigned long long n = strtoull(argv[2], &end, 10);
    if (*end || n == 0 || n > ((unsigned long long)1 << 36)) {
        fprintf(stderr, "mksnap: bad size '%s'\n", argv[2]);
        return 2;
    }
    crew_arena *a;
    int rc = crew_arena_create(&a, (size_t)n + ((size_t)1 << 20));
    if (rc != 0) {
        fprintf(stderr, "mksnap: %s\n", crew_strerror(rc));
        return 1;
    }
    crew_ref ref = crew_arena_alloc(a, (size_t)n, 1);
    if (!ref) {
        fprintf(stderr, "mksnap: cannot allocate %llu bytes\n", n);
        return 1;
    }
    unsigned char *p = crew_arena_ptr(a, ref);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 7) & 255);
    crew_arena_set_root(a, ref);
    if ((rc = crew_arena_freeze(a)) != 0 || (rc = crew_arena_save(a, argv[1])) != 0) {
        fprintf(stderr, "mksnap: %s: %s\n", argv[1], crew_strerror(rc));
        return 1;
    }
    crew_arena_close(a);
    return 0;
}
