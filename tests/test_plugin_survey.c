/*
 * Description: the example plugin examples/plugins/survey.so, loaded with
 * dlopen as `crew run` loads it, over a catalog built here: every function
 * gives the value this test computes on its own (sums per numeric type,
 * mean, stddev, quantiles against a sort, histogram bins, correlation,
 * word counts against the counts of the generated text), bad arguments
 * fail the task with one line instead of crashing, and the per-worker
 * state works from several threads at once.
 *
 * Usage: test_plugin_survey PATH/survey.so
 */
#include <dlfcn.h>
#include <math.h>

#include "common/out.h"
#include "crew_plugin.h"
#include "test.h"

static crew_arena *arena;
static const crew_plugin *plugin;

/* ---- calling the plugin ------------------------------------------------- */

/* The overflow hook of a host that keeps results in memory: grow buf. */
static int grow(crew_out *o, const void *p, size_t n)
{
    size_t cap = o->cap ? o->cap : 8;
    while (cap - o->len < n)
        cap *= 2;
    char *b = realloc(o->buf, cap);
    if (!b)
        return CREW_ENOMEM;
    o->buf = b;
    o->cap = cap;
    memcpy(b + o->len, p, n);
    o->len += n;
    return 0;
}

static crew_plugin_fn *lookup(const char *name)
{
    for (size_t i = 0; i < plugin->n_functions; i++)
        if (strcmp(plugin->functions[i].name, name) == 0)
            return plugin->functions[i].fn;
    TEST_FAIL_("the plugin has no function %s", name);
}

/* Run fn(arg) over `data` with per-worker `state`; the output (caller
 * frees) in *text, NUL-terminated.  Returns the function's code. */
static int call_on(const crew_arena *data, void *state, const char *fn, const char *arg,
                   char **text)
{
    /* A small first buffer, so that longer results go through the hook. */
    crew_out out = {.buf = malloc(8), .cap = 8, .overflow = grow, .state = state};
    ASSERT_NOT_NULL(out.buf);
    int rc = lookup(fn)(data, arg, &out);
    ASSERT_OK(crew_out_write(&out, "", 1));
    *text = out.buf;
    return rc;
}

static void expect_ok(const char *fn, const char *arg, const char *want)
{
    char *got;
    int rc = call_on(arena, NULL, fn, arg, &got);
    if (rc != 0 || strcmp(got, want) != 0)
        TEST_FAIL_("%s %s: returned %d with \"%s\", expected 0 with \"%s\"", fn, arg, rc, got,
                   want);
    free(got);
}

/* The task fails (a positive code) with one line of explanation. */
static void expect_fail_on(const crew_arena *data, const char *fn, const char *arg)
{
    char *got;
    int rc = call_on(data, NULL, fn, arg, &got);
    size_t len = strlen(got);
    if (rc <= 0 || len < 2 || got[len - 1] != '\n' || strchr(got, '\n') != got + len - 1)
        TEST_FAIL_("%s %s: returned %d with \"%s\", expected a failure with one line", fn, arg,
                   rc, got);
    free(got);
}

static void expect_fail(const char *fn, const char *arg)
{
    expect_fail_on(arena, fn, arg);
}

/* The function's output is one number that parses back to exactly `want`
 * (the plugin prints doubles exactly), or within rel of it when rel > 0. */
static void expect_number(const char *fn, const char *arg, double want, double rel)
{
    char *got, *end;
    ASSERT_EQ(call_on(arena, NULL, fn, arg, &got), 0);
    double v = strtod(got, &end);
    int close = rel > 0 ? fabs(v - want) <= rel * fabs(want) : v == want;
    if (end == got || strcmp(end, "\n") != 0 || !close)
        TEST_FAIL_("%s %s: \"%s\", expected %.17g", fn, arg, got, want);
    free(got);
}

/* ---- the data ------------------------------------------------------------ */

#define NX 103     /* x: 1..100 in a shuffled order, and 3 NaNs */
#define NBIG 100003
#define NT 2000    /* rows of generated text */
#define NVOCAB 300

static double xs[NX], ys[NX], big[NBIG];
static const double tenths[10] = {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1};
static unsigned vocab_count[NVOCAB];
static char longest_gen[1100]; /* the expected `longest gen`: the first of the longest rows */
static size_t longest_len;

static crew_ref put(const void *p, size_t size)
{
    crew_ref r = crew_arena_alloc(arena, size ? size : 1, 8);
    ASSERT_NE(r, 0);
    memcpy(crew_arena_ptr(arena, r), p, size);
    return r;
}

/* A CREW_T_STR data set of the n rows. */
static crew_dataset strings(const char *name, const char *const *rows, size_t n)
{
    uint64_t *off = malloc((n + 1) * sizeof *off);
    size_t total = 0;
    ASSERT_NOT_NULL(off);
    for (size_t i = 0; i < n; i++) {
        off[i] = total;
        total += strlen(rows[i]) + 1;
    }
    off[n] = total;
    char *bytes = malloc(total ? total : 1);
    ASSERT_NOT_NULL(bytes);
    for (size_t i = 0; i < n; i++)
        memcpy(bytes + off[i], rows[i], strlen(rows[i]) + 1);
    crew_dataset d = {name, CREW_T_STR, n, put(bytes, total), put(off, (n + 1) * sizeof *off)};
    free(bytes);
    free(off);
    return d;
}

static const char *const text[] = {
    "The cat sat on the mat.",
    "the CAT, the hat; 42 cats",
    "",
    "caf\xc3\xa9 Caf\xc3\xa9 na\xc3\xafve--na\xc3\xafve x_y",
};

static const char *const ties[] = {"a", "ab", "cd", "e"};

static void vocab_word(char *buf, size_t cap, unsigned i)
{
    snprintf(buf, cap, "%c%cw%u", 'a' + (char)(i % 26), 'a' + (char)(i * 7 % 26), i);
}

/* Text rows made of vocabulary words in random case between random
 * separators; vocab_count records what went in. */
static char **generated_text(void)
{
    static const char seps[] = " ,.;-!\t'()";
    char **rows = malloc(NT * sizeof *rows);
    ASSERT_NOT_NULL(rows);
    for (unsigned r = 0; r < NT; r++) {
        char line[1024];
        size_t len = 0;
        unsigned words = (unsigned)(test_mix(r) % 12);
        for (unsigned k = 0; k < words; k++) {
            uint64_t h = test_mix(r * 100 + k + 7);
            unsigned v = (unsigned)(h % NVOCAB);
            if (h >> 60 < 4) /* some words far more often than others */
                v %= 10;
            vocab_count[v]++;
            char w[32];
            vocab_word(w, sizeof w, v);
            for (char *c = w; *c; c++)
                if ((h >> (c - w + 20)) & 1 && *c >= 'a' && *c <= 'z')
                    *c = (char)(*c - 'a' + 'A');
            len += (size_t)snprintf(line + len, sizeof line - len, "%s%c", w,
                                    seps[(h >> 40) % (sizeof seps - 1)]);
        }
        line[len] = '\0';
        if (r == 0 || len > longest_len) {
            longest_len = len;
            snprintf(longest_gen, sizeof longest_gen, "%u\t%zu\t%s\n", r + 1, len, line);
        }
        rows[r] = strdup(line);
        ASSERT_NOT_NULL(rows[r]);
    }
    return rows;
}

static void build_catalog(void)
{
    ASSERT_OK(crew_arena_create(&arena, (size_t)64 << 20));
    for (int i = 0; i < NX; i++) {
        int v = (i * 37) % 103 + 1; /* a permutation of 1..103 */
        xs[i] = v > 100 ? NAN : v;
        ys[i] = i == 40 ? NAN : xs[i] * xs[i] - 3 * xs[i];
    }
    for (int i = 0; i < NBIG; i++) /* many repeats, and a sorted run */
        big[i] = i < 20000 ? i * 0.5 : (double)(test_mix((uint64_t)i) % 5000) / 8.0 - 100;
    int count_ok = 0;
    for (int i = 0; i < NX; i++)
        count_ok += !isnan(xs[i]) && xs[i] <= 100;
    ASSERT_EQ(count_ok, NX - 3); /* x holds exactly 1..100 and 3 NaNs, once each */

    static const uint8_t u8[] = {0, 1, 2, 254, 255, 255, 7};
    static const int32_t i32[] = {-5, 17, INT32_MIN, INT32_MAX, -1000000};
    static const uint32_t u32[] = {UINT32_MAX, 3, 0, 1u << 31};
    static const int64_t i64[] = {-((int64_t)1 << 50), 123456789012, -1, 0, 99};
    static const uint64_t u64[] = {(uint64_t)1 << 52, 5, 11};
    static const float f32[] = {0.5f, -2.25f, NAN, 1e6f, 0.125f};
    static const double hist[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    static const double price[] = {1.5, 2.5, 4.0};
    static const double nans[] = {NAN, NAN, NAN};
    static const double one[] = {42};
    static const double constant[NX] = {0};
    static const double huge[] = {-1e308, 1e308, 0};
    static const double infs[] = {1, INFINITY, 3};
    /* the second lies exactly on the first edge of 7 bins as printed */
    static const double edge[] = {-3.7, -3.6571428571428575, -3.4000000000000004};
    char **gen = generated_text();

    crew_dataset sets[] = {
        {"x", CREW_T_F64, NX, put(xs, sizeof xs), 0},
        {"y", CREW_T_F64, NX, put(ys, sizeof ys), 0},
        {"big", CREW_T_F64, NBIG, put(big, sizeof big), 0},
        {"u8", CREW_T_U8, sizeof u8, put(u8, sizeof u8), 0},
        {"i32", CREW_T_I32, 5, put(i32, sizeof i32), 0},
        {"u32", CREW_T_U32, 4, put(u32, sizeof u32), 0},
        {"i64", CREW_T_I64, 5, put(i64, sizeof i64), 0},
        {"u64", CREW_T_U64, 3, put(u64, sizeof u64), 0},
        {"f32", CREW_T_F32, 5, put(f32, sizeof f32), 0},
        {"hist", CREW_T_F64, 11, put(hist, sizeof hist), 0},
        {"unit price", CREW_T_F64, 3, put(price, sizeof price), 0},
        {"nans", CREW_T_F64, 3, put(nans, sizeof nans), 0},
        {"one", CREW_T_F64, 1, put(one, sizeof one), 0},
        {"constant", CREW_T_F64, NX, put(constant, sizeof constant), 0},
        {"huge", CREW_T_F64, 3, put(huge, sizeof huge), 0},
        {"infs", CREW_T_F64, 3, put(infs, sizeof infs), 0},
        {"edge", CREW_T_F64, 3, put(edge, sizeof edge), 0},
        {"empty", CREW_T_F64, 0, 0, 0},
        {"tenths", CREW_T_F64, 10, put(tenths, sizeof tenths), 0},
        strings("text", text, sizeof text / sizeof *text),
        strings("gen", (const char *const *)gen, NT),
        strings("notext", NULL, 0),
        strings("ties", ties, 4),
    };
    ASSERT_OK(crew_catalog_write(arena, sets, sizeof sets / sizeof *sets));
    ASSERT_OK(crew_arena_freeze(arena));
    for (int i = 0; i < NT; i++)
        free(gen[i]);
    free(gen);
}

/* ---- the checks ---------------------------------------------------------- */

static void test_table(void)
{
    ASSERT_EQ(plugin->abi, CREW_PLUGIN_ABI);
    ASSERT_EQ(plugin->size, sizeof(crew_plugin));
    ASSERT_STR_EQ(plugin->name, "survey");
    ASSERT_NOT_NULL(plugin->init);
    ASSERT_NOT_NULL(plugin->fini);
    static const char *const names[] = {"datasets", "count", "sum", "mean", "stddev",
                                        "min", "max", "quantile", "histogram", "above",
                                        "corr", "words", "grep", "longest"};
    ASSERT_EQ(plugin->n_functions, sizeof names / sizeof *names);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        ASSERT_NOT_NULL(lookup(names[i]));
        ASSERT_NOT_NULL(plugin->functions[i].help);
    }
}

static void test_sums_per_type(void)
{
    /* exact integer sums, formatted as integers: the plugin's %.15g
     * prints an integer below 10^15 the same way */
    char want[64];
    snprintf(want, sizeof want, "%d\n", 0 + 1 + 2 + 254 + 255 + 255 + 7);
    expect_ok("sum", "u8", want);
    snprintf(want, sizeof want, "%lld\n", -5LL + 17 + INT32_MIN + INT32_MAX - 1000000);
    expect_ok("sum", "i32", want);
    snprintf(want, sizeof want, "%lld\n", (long long)UINT32_MAX + 3 + 0 + (1LL << 31));
    expect_ok("sum", "u32", want);
    snprintf(want, sizeof want, "%lld\n", -(1LL << 50) + 123456789012LL - 1 + 0 + 99);
    expect_ok("sum", "i64", want);
    expect_number("sum", "u64", (double)((1ULL << 52) + 16), 0);
    expect_ok("sum", "f32", "999998.375\n"); /* 0.5 - 2.25 + 1e6 + 0.125, the NaN skipped */
    expect_ok("count", "f32", "4\n");
    expect_ok("min", "f32", "-2.25\n");
    expect_ok("max", "u32", "4294967295\n");
    expect_ok("min", "i32", "-2147483648\n");
    expect_ok("sum", "\"unit price\"", "8\n");
    expect_ok("mean", "  \"unit price\"  ", "2.6666666666666665\n");
}

static void test_statistics(void)
{
    double sum = 0, n = 0;
    for (int i = 0; i < NX; i++)
        if (!isnan(xs[i]))
            sum += xs[i], n++;
    ASSERT(sum == 5050 && n == 100);
    double m = sum / n, ss = 0;
    for (int i = 0; i < NX; i++)
        if (!isnan(xs[i]))
            ss += (xs[i] - m) * (xs[i] - m);
    expect_ok("count", "x", "100\n");
    expect_ok("sum", "x", "5050\n");
    expect_ok("mean", "x", "50.5\n");
    expect_ok("min", "x", "1\n");
    expect_ok("max", "x", "100\n");
    expect_number("stddev", "x", sqrt(ss / (n - 1)), 1e-13);
    expect_number("stddev", "hist", sqrt(11), 1e-15); /* 0..10: squares sum to 110 */
    expect_ok("above", "x 50", "50\n");
    expect_ok("above", "x 99.5", "1\n");
    expect_ok("above", "x -inf", "100\n");
    expect_ok("above", "x 100", "0\n");
    expect_ok("count", "empty", "0\n");
    expect_ok("sum", "empty", "0\n");
    expect_ok("count", "nans", "0\n");
    expect_ok("sum", "infs", "inf\n");
    expect_ok("max", "infs", "inf\n");
    /* compensated summation: ten 0.1s make 1, where a plain loop is off */
    double naive = 0;
    for (int i = 0; i < 10; i++)
        naive += tenths[i];
    ASSERT(naive != 1.0);
    expect_ok("sum", "tenths", "1\n");
    expect_ok("mean", "tenths", "0.1\n");
}

/* The quantile definition, computed by sorting. */
static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double reference_quantile(const double *v, size_t n, double q)
{
    double *s = malloc(n * sizeof *s);
    size_t k = 0;
    ASSERT_NOT_NULL(s);
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i]))
            s[k++] = v[i];
    qsort(s, k, sizeof *s, cmp);
    double h = (double)(k - 1) * q;
    size_t lo = (size_t)floor(h);
    double r = lo + 1 < k ? s[lo] + (h - (double)lo) * (s[lo + 1] - s[lo]) : s[lo];
    free(s);
    return r;
}

static void test_quantile(void)
{
    expect_ok("quantile", "x 0.5", "50.5\n");
    expect_ok("quantile", "x 0", "1\n");
    expect_ok("quantile", "x 1", "100\n");
    expect_ok("quantile", "x 0.25", "25.75\n");
    expect_ok("quantile", "one 0.3", "42\n");
    expect_ok("quantile", "constant 0.7", "0\n");
    expect_ok("quantile", "huge 0.75", "5e+307\n");
    static const double qs[] = {0, 1e-9, 0.001, 0.1, 0.25, 0.3333, 0.5, 0.77, 0.999, 1};
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
        char arg[64];
        snprintf(arg, sizeof arg, "big %.17g", qs[i]);
        expect_number("quantile", arg, reference_quantile(big, NBIG, qs[i]), 0);
        snprintf(arg, sizeof arg, "y %.17g", qs[i]);
        expect_number("quantile", arg, reference_quantile(ys, NX, qs[i]), 0);
    }
}

static void test_histogram(void)
{
    expect_ok("histogram", "hist 4", "0\t2.5\t3\n2.5\t5\t2\n5\t7.5\t3\n7.5\t10\t3\n");
    expect_ok("histogram", "hist 1", "0\t10\t11\n");
    expect_ok("histogram", "one 2", "42\t42\t1\n42\t42\t0\n");
    expect_ok("histogram", "huge 2", "-1e+308\t0\t1\n0\t1e+308\t2\n");
    /* a value on a printed edge counts in the bin it starts, [low, high) */
    char *edge_out;
    ASSERT_EQ(call_on(arena, NULL, "histogram", "edge 7", &edge_out), 0);
    static const char edge_want[] = "-3.7\t-3.6571428571428575\t1\n"
                                    "-3.6571428571428575\t-3.6142857142857143\t1\n";
    ASSERT(strncmp(edge_out, edge_want, sizeof edge_want - 1) == 0);
    free(edge_out);
    /* x is 1..100: ten bins of 9.9 from 1, and no value on an edge, so
     * each holds ten; the edges are 1 + 9.9 b up to rounding */
    char *got, *p;
    ASSERT_EQ(call_on(arena, NULL, "histogram", "x 10", &got), 0);
    p = got;
    for (int b = 0; b < 10; b++) {
        double low = strtod(p, &p), high = strtod(p, &p);
        unsigned long n = strtoul(p, &p, 10);
        ASSERT(fabs(low - (1 + 9.9 * b)) < 1e-12 && fabs(high - (1 + 9.9 * (b + 1))) < 1e-12);
        ASSERT_EQ(n, 10);
        ASSERT(*p++ == '\n');
    }
    ASSERT(*p == '\0');
    free(got);
}

static void test_corr(void)
{
    double sx = 0, sy = 0, n = 0;
    for (int i = 0; i < NX; i++)
        if (!isnan(xs[i]) && !isnan(ys[i]))
            sx += xs[i], sy += ys[i], n++;
    double mx = sx / n, my = sy / n, cxx = 0, cyy = 0, cxy = 0;
    for (int i = 0; i < NX; i++)
        if (!isnan(xs[i]) && !isnan(ys[i])) {
            cxx += (xs[i] - mx) * (xs[i] - mx);
            cyy += (ys[i] - my) * (ys[i] - my);
            cxy += (xs[i] - mx) * (ys[i] - my);
        }
    expect_number("corr", "x y", cxy / sqrt(cxx * cyy), 1e-12);
    expect_ok("corr", "x x", "1\n");
}

static void test_strings(void)
{
    expect_ok("words", "text 5", "the\t4\ncaf\xc3\xa9\t2\ncat\t2\nna\xc3\xafve\t2\n42\t1\n");
    expect_ok("words", "text 100",
              "the\t4\ncaf\xc3\xa9\t2\ncat\t2\nna\xc3\xafve\t2\n42\t1\ncats\t1\nhat\t1\n"
              "mat\t1\non\t1\nsat\t1\nx\t1\ny\t1\n");
    expect_ok("words", "notext 3", "");
    expect_ok("grep", "text cat", "2\n");
    expect_ok("grep", "text The", "1\n");
    expect_ok("grep", "text the mat", "1\n");
    expect_ok("grep", "text ;", "1\n");
    expect_ok("grep", "text zebra", "0\n");
    char want_longest[64];
    snprintf(want_longest, sizeof want_longest, "4\t%zu\t%s\n", strlen(text[3]), text[3]);
    expect_ok("longest", "text", want_longest);
    expect_ok("longest", "gen", longest_gen);
    expect_ok("longest", "ties", "2\t2\tab\n");
    expect_ok("count", "text", "4\n");
    expect_ok("count", "notext", "0\n");

    /* The generated text: expected lines from what generated_text put in. */
    unsigned order[NVOCAB];
    char wi[32], wj[32];
    for (unsigned i = 0; i < NVOCAB; i++)
        order[i] = i;
    for (unsigned i = 1; i < NVOCAB; i++) /* insertion sort: count desc, word asc */
        for (unsigned j = i; j > 0; j--) {
            unsigned a = order[j - 1], b = order[j];
            vocab_word(wi, sizeof wi, a);
            vocab_word(wj, sizeof wj, b);
            if (vocab_count[a] > vocab_count[b] ||
                (vocab_count[a] == vocab_count[b] && strcmp(wi, wj) < 0))
                break;
            order[j - 1] = b;
            order[j] = a;
        }
    static char want[NVOCAB * 40];
    static const unsigned tops[] = {1, 4, 13, 40, 121, NVOCAB - 1, NVOCAB, 1000};
    for (size_t t = 0; t < sizeof tops / sizeof *tops; t++) {
        unsigned top = tops[t];
        size_t len = 0;
        for (unsigned i = 0; i < top && i < NVOCAB; i++) {
            if (!vocab_count[order[i]])
                break;
            vocab_word(wi, sizeof wi, order[i]);
            len += (size_t)snprintf(want + len, sizeof want - len, "%s\t%u\n", wi,
                                    vocab_count[order[i]]);
        }
        char arg[32];
        snprintf(arg, sizeof arg, "gen %u", top);
        expect_ok("words", arg, want);
    }
}

static void test_datasets(void)
{
    char *got;
    ASSERT_EQ(call_on(arena, NULL, "datasets", "", &got), 0);
    static const char head[] = "x\tf64\t103\ny\tf64\t103\nbig\tf64\t100003\nu8\tu8\t7\n";
    ASSERT(strncmp(got, head, strlen(head)) == 0);
    ASSERT_NOT_NULL(strstr(got, "\nunit price\tf64\t3\n"));
    ASSERT_NOT_NULL(strstr(got, "\ntext\tstr\t4\n"));
    ASSERT_NOT_NULL(strstr(got, "\nnotext\tstr\t0\n"));
    int lines = 0;
    for (char *p = got; *p; p++)
        lines += *p == '\n';
    ASSERT_EQ(lines, 23); /* one per data set above */
    free(got);
}

static void test_bad_arguments(void)
{
    static const char *const bad[][2] = {
        {"sum", ""}, {"sum", "   "}, {"sum", "nope"}, {"sum", "text"}, {"sum", "x extra"},
        {"sum", "\"x"}, {"sum", "unit price"}, {"count", "nope"}, {"count", ""},
        {"mean", "empty"}, {"mean", "nans"}, {"min", "empty"}, {"max", "nans"},
        {"stddev", "one"}, {"stddev", "empty"}, {"quantile", "x"}, {"quantile", "x 1.5"},
        {"quantile", "x abc"}, {"quantile", "x -0.1"}, {"quantile", "x nan"},
        {"quantile", "x 0.5x"}, {"quantile", "x 0.5 1"}, {"quantile", "empty 0.5"},
        {"quantile", "nans 0.5"}, {"quantile", "text 0.5"}, {"histogram", "x 0"},
        {"histogram", "x -3"}, {"histogram", "x 2.5"}, {"histogram", "x 1000001"},
        {"histogram", "x 99999999999999999999999"}, {"histogram", "empty 3"},
        {"histogram", "infs 3"}, {"histogram", "x"}, {"above", "x"}, {"above", "x foo"},
        {"above", "x nan"}, {"above", "text 3"}, {"corr", "x"}, {"corr", "x u8"},
        {"corr", "x constant"}, {"corr", "constant x"}, {"corr", "x text"},
        {"corr", "x nope"}, {"words", "x 3"}, {"words", "text 0"}, {"words", "text"},
        {"words", "text -1"}, {"words", "text 3 4"}, {"grep", "text"}, {"grep", "text   "},
        {"grep", ""}, {"grep", "x 3"}, {"grep", "\"text 3"}, {"longest", "x"},
        {"longest", "notext"}, {"longest", ""}, {"datasets", "extra"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_fail(bad[i][0], bad[i][1]);
    char name[400];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    expect_fail("sum", name);
    expect_fail("grep", name);
    expect_fail("sum", NULL);

    /* an arena without a catalog */
    crew_arena *plain;
    ASSERT_OK(crew_arena_create(&plain, 1 << 20));
    crew_arena_set_root(plain, crew_arena_strdup(plain, "not a catalog"));
    ASSERT_OK(crew_arena_freeze(plain));
    expect_fail_on(plain, "datasets", "");
    expect_fail_on(plain, "sum", "x");
    expect_fail_on(plain, "words", "text 3");
    crew_arena_close(plain);
}

/* Several workers at once, each with its own state from init. */
static void *worker(void *arg)
{
    (void)arg;
    void *state = NULL;
    ASSERT_EQ(plugin->init(arena, &state), 0);
    ASSERT_NOT_NULL(state);
    double want[3] = {reference_quantile(big, NBIG, 0.5), reference_quantile(xs, NX, 0.9),
                      reference_quantile(big, NBIG, 0.01)};
    static const char *const args[3] = {"big 0.5", "x 0.9", "big 0.01"};
    for (int round = 0; round < 6; round++) {
        char *got;
        ASSERT_EQ(call_on(arena, state, "quantile", args[round % 3], &got), 0);
        ASSERT(strtod(got, NULL) == want[round % 3]);
        free(got);
    }
    plugin->fini(state);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/survey.so\n", argv[0]);
        return 2;
    }
    void *so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!so)
        TEST_FAIL_("dlopen %s: %s", argv[1], dlerror());
    plugin = dlsym(so, "crew_plugin_table");
    if (!plugin)
        TEST_FAIL_("%s exports no crew_plugin_table: %s", argv[1], dlerror());
    build_catalog();
    test_table();
    test_sums_per_type();
    test_statistics();
    test_quantile();
    test_histogram();
    test_corr();
    test_strings();
    test_datasets();
    test_bad_arguments();
    TEST_THREADS_OK(4, worker, NULL);
    crew_arena_close(arena);
    dlclose(so);
    printf("test_plugin_survey: ok\n");
    return 0;
}
