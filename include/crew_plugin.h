/*
 * crew_plugin.h -- functions that `crew run` can call by name.
 *
 * A plugin is a shared object that exports one table, crew_plugin_table,
 * listing named functions.  `crew run --plugin P.so --data D.crew` maps the
 * snapshot D.crew once and calls them over it, N at a time, one call per
 * task line `name argument`:
 *
 *   #include <crew_plugin.h>
 *
 *   static int count(const crew_arena *data, const char *arg, crew_out *out)
 *   {
 *       crew_dataset d;
 *       if (crew_catalog_find(data, arg, &d) != 0)
 *           return crew_out_error(out, "no data set named %s", arg);
 *       return crew_out_printf(out, "%llu\n", (unsigned long long)d.count);
 *   }
 *
 *   static const crew_function functions[] = {
 *       {"count", count, "rows in the data set named by the argument"},
 *   };
 *   CREW_PLUGIN("example", "what it is for", functions, NULL, NULL);
 *
 * Build it with `cc -shared -fPIC -o example.so example.c` (add
 * `pkg-config --cflags crew`); the crew_* calls resolve against the
 * libcrew that `crew` itself loads.
 *
 * The contract for a function:
 *   - It reads `data` (the snapshot, read-only: writing to it fails the
 *     task, or crashes it under --isolation threads) and its argument (the
 *     rest of the task line after the name and its blanks, "" when none;
 *     valid until the function returns).
 *   - It writes its result with crew_out_write / crew_out_printf.  The
 *     output of a task is written whole or not at all, never interleaved
 *     with another task's.  What it prints to stdout itself (printf) goes
 *     to crew's stderr, so it can never corrupt the records.
 *   - It returns 0 (success) or a positive error code of its choosing,
 *     which the job log and the output record show.  Negative values are
 *     reserved (the task then fails with status CREW_EINVAL).
 *   - It may run on any thread, concurrently with itself, and, with
 *     --isolation processes, in a worker process that may be killed after
 *     a timeout.  Global state must be thread-safe or per worker (init).
 *
 * ABI.  CREW_PLUGIN_ABI changes whenever crew_plugin or crew_function
 * change incompatibly; `crew run` refuses a plugin built for another ABI
 * with a message saying both numbers.
 */
#ifndef CREW_PLUGIN_H
#define CREW_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "crew.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CREW_PLUGIN_ABI 1u

/* Where a task's result goes; owned by crew, valid during the call only. */
typedef struct crew_out crew_out;

typedef int crew_plugin_fn(const crew_arena *data, const char *arg, crew_out *out);

typedef struct crew_function {
    const char *name;     /* [A-Za-z0-9_.-]+, at most 64 bytes, unique */
    crew_plugin_fn *fn;
    const char *help;     /* one line, shown by `crew run --list` (may be NULL) */
} crew_function;

typedef struct crew_plugin {
    uint32_t abi;         /* CREW_PLUGIN_ABI: the first field in every ABI */
    uint32_t size;        /* sizeof(crew_plugin) */
    const char *name;
    const char *description;
    const crew_function *functions;
    size_t n_functions;
    /*
     * Optional.  init runs once in each worker (thread or process) before
     * its first task, and may set *state; a nonzero return fails every
     * task of that worker with that code (a negative one: its absolute
     * value), the output saying init failed.  fini(state) runs once for each
     * successful init when the run ends: in the worker process for
     * --isolation processes, on the main thread for threads.  A worker
     * process killed by a timeout or a crash runs no fini.
     */
    int (*init)(const crew_arena *data, void **state);
    void (*fini)(void *state);
} crew_plugin;

/* Export the table.  functions must be an array (its length is taken). */
#define CREW_PLUGIN(name_, description_, functions_, init_, fini_)                            \
    __attribute__((visibility("default"))) const crew_plugin crew_plugin_table = {            \
        CREW_PLUGIN_ABI, (uint32_t)sizeof(crew_plugin), (name_), (description_), (functions_), \
        sizeof(functions_) / sizeof((functions_)[0]), (init_), (fini_)}

/*
 * crew_out_write -- append len bytes to the task's output.
 * crew_out_printf / crew_out_vprintf -- append formatted text.
 * Return 0 or CREW_ENOMEM (the output could not grow; it stays as it was
 * before the call), CREW_EINVAL (NULL out, or buf NULL with len > 0).
 * The result of a task may be of any size; with --isolation processes,
 * output beyond CREW_OUT_INLINE bytes travels through a temporary file.
 */
#define CREW_OUT_INLINE ((size_t)4 << 10)
CREW_API int crew_out_write(crew_out *out, const void *buf, size_t len);
CREW_API int crew_out_printf(crew_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
CREW_API int crew_out_vprintf(crew_out *out, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/*
 * crew_out_error -- write a one-line message (a newline is added) and
 * return 1, so `return crew_out_error(out, "no column %s", arg);` fails
 * the task with a reason.
 */
CREW_API int crew_out_error(crew_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* crew_out_state -- the state this worker's init set (NULL without init). */
CREW_API void *crew_out_state(const crew_out *out);

#ifdef __cplusplus
}
#endif

#endif /* CREW_PLUGIN_H */
