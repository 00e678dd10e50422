/*
 * cli_work.h -- the work bench_cli gives to `crew run` and to its peers,
 * written once so that every side runs the same code:
 *
 *   short tasks  cli_short_hash(argument): an FNV-1a hash of the argument
 *                string mixed CLI_SHORT_ROUNDS times, a few microseconds.
 *                The plugin function `hash` (plugins/bench_plug.c) and the
 *                program task_prog (peers/task_prog.c, run once per task by
 *                GNU parallel and xargs) both print CLI_SHORT_LINE.
 *   heavy tasks  cli_heavy(data, i): a sum of mixed 64-bit words over the
 *                whole of a snapshot's array, starting at a place that
 *                depends on i: 70-85 ms for 256 MiB on the machine of
 *                docs/PERFORMANCE.md.  The plugin function `heavy`
 *                and lib_run (peers/lib_run.c: crew_run through the
 *                library) both print CLI_HEAVY_LINE.
 *
 * The snapshot's root is a cli_root: the count and the ref of an array of
 * uint64_t that bench_cli fills with cli_fill.  Everything is integer
 * arithmetic, so every side must print exactly the same bytes.
 *
 * All functions are static inline: a file that includes this header only
 * for the short tasks (task_prog) needs no crew library.
 */
#ifndef CREW_BENCH_CLI_WORK_H
#define CREW_BENCH_CLI_WORK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>

#include "crew.h"

#define CLI_SHORT_ROUNDS 2000
#define CLI_SHORT_LINE "%s %016" PRIx64 "\n"  /* argument, hash */
#define CLI_HEAVY_LINE "%" PRIu64 " %016" PRIx64 "\n" /* task number, sum */

/* The snapshot's root. */
typedef struct cli_root {
    uint64_t n; /* elements of x */
    crew_ref x; /* uint64_t[n], 64-byte aligned */
} cli_root;

/* A 64-bit finalizer (splitmix64's): every input bit changes every output
 * bit, and it costs two multiplications, so a loop of it is compute-bound. */
static inline uint64_t cli_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The short task: each round depends on the last, so it cannot be
 * vectorised or cut short. */
static inline uint64_t cli_short_hash(const char *arg)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)arg; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    for (uint64_t r = 0; r < CLI_SHORT_ROUNDS; r++)
        h = cli_mix(h + r);
    return h;
}

/* The data: x[j] = mix(j). */
static inline void cli_fill(uint64_t *x, uint64_t n)
{
    for (uint64_t j = 0; j < n; j++)
        x[j] = cli_mix(j);
}

static inline uint64_t cli_fold(const uint64_t *x, uint64_t from, uint64_t to, uint64_t i)
{
    uint64_t acc = 0;
    for (uint64_t j = from; j < to; j++)
        acc += cli_mix(cli_mix(x[j] ^ i) + j);
    return acc;
}

/* Heavy task i: the whole array, from element i*n/64 on, wrapping round
 * at the end, so that two workers do not stream the same pages at once. */
static inline uint64_t cli_heavy(const uint64_t *x, uint64_t n, uint64_t i)
{
    uint64_t start = (i % 64) * (n / 64);
    return cli_fold(x, start, n, i) + cli_fold(x, 0, start, i);
}

/*
 * Heavy task i over a snapshot (or the arena bench_cli builds): find the
 * array through the root, checked, and fold.  0 and *sum set, or -1 when
 * the arena does not hold a cli_root and its array.
 */
static inline int cli_heavy_task(const crew_arena *data, uint64_t i, uint64_t *sum)
{
    const cli_root *r = CREW_ARENA_GET(data, cli_root, crew_arena_root(data));
    if (!r || r->n < 64)
        return -1;
    const uint64_t *x = CREW_ARENA_GET_ARRAY(data, uint64_t, r->x, r->n);
    if (!x)
        return -1;
    *sum = cli_heavy(x, r->n, i);
    return 0;
}

/* A task number: decimal digits only, no sign, no overflow.  1 if it is. */
static inline int cli_parse_index(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 1;
}

#endif /* CREW_BENCH_CLI_WORK_H */
