/*
 * fork_join.c -- crew's data-parallel calls in one short program.
 *
 *   crew_for     transform an array in place (no chunk size to choose)
 *   crew_reduce  a histogram: one accumulator per stolen range, merged
 *   crew_join    a merge sort that splits itself in two at every level
 *
 * Each result is checked against a plain serial computation.
 * Usage: fork_join [N]   (default 10,000,000 elements)
 */
#define _POSIX_C_SOURCE 200809L
#include <crew.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- crew_for: x = x * 1.5 + 1 over the whole array --------------------- */

static void scale(void *ctx, size_t lo, size_t hi)
{
    double *x = ctx;
    for (size_t i = lo; i < hi; i++)
        x[i] = x[i] * 1.5 + 1.0;
}

/* ---- crew_reduce: a 16-bucket histogram of the values ------------------- */

typedef struct histogram {
    size_t count[16];
} histogram;

static void hist_init(void *ctx, void *acc)
{
    (void)ctx;
    memset(acc, 0, sizeof(histogram));
}

static void hist_body(void *ctx, size_t lo, size_t hi, void *acc)
{
    const double *x = ctx;
    histogram *h = acc;
    for (size_t i = lo; i < hi; i++)
        h->count[(size_t)x[i] % 16]++;
}

static void hist_combine(void *ctx, void *acc, const void *other)
{
    (void)ctx;
    histogram *h = acc;
    const histogram *o = other;
    for (int b = 0; b < 16; b++)
        h->count[b] += o->count[b];
}

/* ---- crew_join: merge sort ------------------------------------------------ */

typedef struct sort_job {
    crew *pool;
    double *a, *tmp;
    size_t n;
} sort_job;

static int cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static void merge_sort(void *arg)
{
    sort_job *s = arg;
    if (s->n <= 4096) { /* small pieces: the C library's sort */
        qsort(s->a, s->n, sizeof *s->a, cmp);
        return;
    }
    size_t half = s->n / 2;
    sort_job left = {s->pool, s->a, s->tmp, half};
    sort_job right = {s->pool, s->a + half, s->tmp + half, s->n - half};
    crew_join(s->pool, merge_sort, &left, merge_sort, &right); /* both halves, maybe at once */
    size_t i = 0, j = half, k = 0;
    while (i < half && j < s->n)
        s->tmp[k++] = s->a[i] <= s->a[j] ? s->a[i++] : s->a[j++];
    while (i < half)
        s->tmp[k++] = s->a[i++];
    while (j < s->n)
        s->tmp[k++] = s->a[j++];
    memcpy(s->a, s->tmp, s->n * sizeof *s->a);
}

static int fail(const char *what)
{
    fprintf(stderr, "fork_join: %s does not match the serial result\n", what);
    return 1;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000000;
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *tmp = malloc(n * sizeof *tmp);
    if (n == 0 || !x || !y || !tmp) {
        fprintf(stderr, "fork_join: need N > 0 and memory for 3 x N doubles\n");
        return 2;
    }
    uint64_t seed = 42;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = y[i] = (double)(seed >> 40) / 1024.0;
    }
    crew *pool;
    int rc = crew_open(&pool, NULL);
    if (rc < 0) {
        fprintf(stderr, "fork_join: %s\n", crew_strerror(rc));
        return 1;
    }
    printf("%u workers, %zu elements\n", crew_workers(pool), n);

    crew_for(pool, 0, n, 0, scale, x);
    scale(y, 0, n);
    if (memcmp(x, y, n * sizeof *x) != 0)
        return fail("crew_for");
    printf("crew_for:    scaled every element\n");

    histogram h, serial;
    crew_reducer r = {sizeof h, hist_init, hist_body, hist_combine};
    rc = crew_reduce(pool, 0, n, 0, &r, x, &h);
    hist_init(NULL, &serial);
    hist_body(y, 0, n, &serial);
    if (rc < 0 || memcmp(&h, &serial, sizeof h) != 0)
        return fail("crew_reduce");
    printf("crew_reduce: histogram, bucket 0 holds %zu values\n", h.count[0]);

    sort_job s = {pool, x, tmp, n};
    merge_sort(&s);
    qsort(y, n, sizeof *y, cmp);
    if (memcmp(x, y, n * sizeof *x) != 0)
        return fail("crew_join merge sort");
    printf("crew_join:   sorted, smallest %.3f, largest %.3f\n", x[0], x[n - 1]);

    crew_close(pool);
    free(x);
    free(y);
    free(tmp);
    return 0;
}
