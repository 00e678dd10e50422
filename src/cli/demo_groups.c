/*
 * demo_groups.c -- the group-by analyses of `crew demo`: revenue by store,
 * day, customer and segment (a join with the customers table), and by
 * product name, a string column hashed row by row (the costly ones).
 *
 * Like those of demo_stats.c, each runs serially over the rows in order
 * and writes only its own result.  Where several want the same grouping
 * (revenue by day, spend by customer) each computes it again: they are
 * independent functions of the data set, which is what crew runs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/demo.h"

/* ---- small groups: stores, days, segments ------------------------------- */

int an_top_store(const demo_table *t, demo_result *r)
{
    double rev[DEMO_STORES] = {0}, total = 0;
    for (uint64_t i = 0; i < t->rows; i++)
        rev[t->store[i]] += demo_value(t, i);
    unsigned best = 0;
    for (unsigned s = 0; s < DEMO_STORES; s++) {
        total += rev[s];
        best = rev[s] > rev[best] ? s : best;
    }
    snprintf(r->text, sizeof r->text, "%s", t->store_name[best]);
    r->v[0] = rev[best];
    r->v[1] = rev[best] / total;
    return 0;
}

int an_busiest_store(const demo_table *t, demo_result *r)
{
    uint64_t n[DEMO_STORES] = {0};
    for (uint64_t i = 0; i < t->rows; i++)
        n[t->store[i]]++;
    unsigned best = 0;
    for (unsigned s = 0; s < DEMO_STORES; s++)
        best = n[s] > n[best] ? s : best;
    snprintf(r->text, sizeof r->text, "%s", t->store_name[best]);
    r->n[0] = n[best];
    return 0;
}

static void daily_revenue(const demo_table *t, double rev[DEMO_DAYS])
{
    memset(rev, 0, DEMO_DAYS * sizeof *rev);
    for (uint64_t i = 0; i < t->rows; i++)
        rev[t->day[i]] += demo_value(t, i);
}

int an_best_day(const demo_table *t, demo_result *r)
{
    double rev[DEMO_DAYS];
    daily_revenue(t, rev);
    unsigned best = 0;
    for (unsigned d = 0; d < DEMO_DAYS; d++)
        best = rev[d] > rev[best] ? d : best;
    r->n[0] = best;
    r->v[0] = rev[best];
    return 0;
}

int an_best_weekday(const demo_table *t, demo_result *r)
{
    static const char *const names[7] = {"Sunday", "Monday", "Tuesday", "Wednesday",
                                         "Thursday", "Friday", "Saturday"};
    double rev[7] = {0}, total = 0;
    for (uint64_t i = 0; i < t->rows; i++)
        rev[t->day[i] % 7] += demo_value(t, i);
    unsigned best = 0;
    for (unsigned d = 0; d < 7; d++) {
        total += rev[d];
        best = rev[d] > rev[best] ? d : best;
    }
    snprintf(r->text, sizeof r->text, "%s", names[best]);
    r->v[0] = rev[best] / total;
    return 0;
}

int an_growth(const demo_table *t, demo_result *r)
{
    double year[2] = {0};
    for (uint64_t i = 0; i < t->rows; i++)
        year[t->day[i] >= 365] += demo_value(t, i);
    r->v[0] = year[0] > 0 ? year[1] / year[0] - 1 : 0;
    return 0;
}

/* The least-squares slope of revenue over 24 months of 30 days, as a
 * fraction of the mean month. */
int an_monthly_trend(const demo_table *t, demo_result *r)
{
    double rev[DEMO_DAYS], month[24] = {0}, mean = 0;
    daily_revenue(t, rev);
    for (unsigned d = 0; d < 720; d++)
        month[d / 30] += rev[d];
    for (int m = 0; m < 24; m++)
        mean += month[m] / 24;
    double sxy = 0, sxx = 0;
    for (int m = 0; m < 24; m++) {
        sxy += (m - 11.5) * (month[m] - mean);
        sxx += (m - 11.5) * (m - 11.5);
    }
    r->v[0] = mean > 0 ? sxy / sxx / mean : 0;
    return 0;
}

int an_up_streak(const demo_table *t, demo_result *r)
{
    double rev[DEMO_DAYS];
    daily_revenue(t, rev);
    uint64_t run = 1, best = 1, end = 0;
    for (unsigned d = 1; d < DEMO_DAYS; d++) {
        run = rev[d] > rev[d - 1] ? run + 1 : 1;
        if (run > best)
            best = run, end = d;
    }
    r->n[0] = best;
    r->n[1] = end;
    return 0;
}

int an_top_segment(const demo_table *t, demo_result *r)
{
    double rev[DEMO_SEGMENTS] = {0}, total = 0;
    for (uint64_t i = 0; i < t->rows; i++)
        rev[t->segment[t->customer[i]]] += demo_value(t, i);
    unsigned best = 0;
    for (unsigned s = 0; s < DEMO_SEGMENTS; s++) {
        total += rev[s];
        best = rev[s] > rev[best] ? s : best;
    }
    snprintf(r->text, sizeof r->text, "%s", t->segment_name[best]);
    r->v[0] = rev[best] / total;
    return 0;
}

/* ---- customers: a group per customer, random access ---------------------- */

int an_distinct_customers(const demo_table *t, demo_result *r)
{
    uint64_t *seen = calloc((t->customers + 63) / 64, sizeof *seen), n = 0;
    if (!seen)
        return 1;
    for (uint64_t i = 0; i < t->rows; i++)
        seen[t->customer[i] / 64] |= (uint64_t)1 << (t->customer[i] % 64);
    for (uint64_t w = 0; w < (t->customers + 63) / 64; w++)
        n += (uint64_t)__builtin_popcountll(seen[w]);
    free(seen);
    r->n[0] = n;
    return 0;
}

int an_repeat_customers(const demo_table *t, demo_result *r)
{
    uint32_t *orders = calloc(t->customers, sizeof *orders);
    if (!orders)
        return 1;
    for (uint64_t i = 0; i < t->rows; i++)
        orders[t->customer[i]]++;
    uint64_t buyers = 0, repeat = 0;
    for (uint64_t c = 0; c < t->customers; c++) {
        buyers += orders[c] > 0;
        repeat += orders[c] > 1;
    }
    free(orders);
    r->n[0] = repeat;
    r->v[0] = buyers ? (double)repeat / (double)buyers : 0;
    return 0;
}

/* Each customer's spend, in an array the caller frees (NULL: no memory). */
static double *customer_spend(const demo_table *t, double *total)
{
    double *spend = calloc(t->customers, sizeof *spend), s = 0;
    if (!spend)
        return NULL;
    for (uint64_t i = 0; i < t->rows; i++) {
        double v = demo_value(t, i);
        spend[t->customer[i]] += v;
        s += v;
    }
    *total = s;
    return spend;
}

/* The spends of the customers who bought anything, packed to the front of
 * `spend`; returns how many. */
static uint64_t buyers_only(const demo_table *t, double *spend)
{
    uint64_t n = 0;
    for (uint64_t c = 0; c < t->customers; c++)
        if (spend[c] > 0)
            spend[n++] = spend[c];
    return n;
}

int an_top_customers(const demo_table *t, demo_result *r)
{
    double total, *spend = customer_spend(t, &total);
    if (!spend)
        return 1;
    /* The ten biggest, kept sorted by insertion: ties keep the lower id. */
    uint64_t top[10];
    unsigned have = 0;
    for (uint64_t c = 0; c < t->customers; c++) {
        if (have == 10 && spend[c] <= spend[top[9]])
            continue;
        unsigned k = have < 10 ? have++ : 9;
        while (k > 0 && spend[top[k - 1]] < spend[c]) {
            top[k] = top[k - 1];
            k--;
        }
        top[k] = c;
    }
    double ten = 0;
    for (unsigned k = 0; k < have; k++)
        ten += spend[top[k]];
    r->n[0] = top[0];
    r->v[0] = spend[top[0]];
    r->v[1] = ten / total;
    free(spend);
    return 0;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The Gini coefficient of customers' spend: a full sort, costly on purpose. */
int an_gini(const demo_table *t, demo_result *r)
{
    double total, *spend = customer_spend(t, &total);
    if (!spend)
        return 1;
    uint64_t n = buyers_only(t, spend);
    qsort(spend, n, sizeof *spend, cmp_double);
    double weighted = 0, sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        weighted += (double)(i + 1) * spend[i];
        sum += spend[i];
    }
    r->v[0] = n ? 2 * weighted / ((double)n * sum) - (double)(n + 1) / (double)n : 0;
    free(spend);
    return 0;
}

int an_median_customer(const demo_table *t, demo_result *r)
{
    double total, *spend = customer_spend(t, &total);
    if (!spend)
        return 1;
    uint64_t n = buyers_only(t, spend);
    r->v[0] = n ? demo_select(spend, n, (n - 1) / 2) : 0;
    free(spend);
    return 0;
}

/* Customers who bought in both years. */
int an_loyal_customers(const demo_table *t, demo_result *r)
{
    uint8_t *years = calloc(t->customers, 1);
    if (!years)
        return 1;
    for (uint64_t i = 0; i < t->rows; i++)
        years[t->customer[i]] |= (uint8_t)(t->day[i] < 365 ? 1 : 2);
    uint64_t both = 0, buyers = 0;
    for (uint64_t c = 0; c < t->customers; c++) {
        both += years[c] == 3;
        buyers += years[c] != 0;
    }
    free(years);
    r->n[0] = both;
    r->v[0] = buyers ? (double)both / (double)buyers : 0;
    return 0;
}

/* ---- product names: a hash table keyed by the string ------------------- */

/*
 * Groups keyed by string content, open addressing with linear probing.
 * The key is a pointer into the arena (the first row that had it) and its
 * length, so nothing is copied.  8192 slots for at most 4096 distinct
 * names keep probes short; a name beyond that is an error of the data.
 */
#define GROUP_SLOTS 8192

typedef struct groups {
    uint64_t hash[GROUP_SLOTS];
    const char *key[GROUP_SLOTS];
    uint32_t len[GROUP_SLOTS];
    unsigned used;
} groups;

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3u;
    return h;
}

/* The slot of key s[0, len), added if new and `add`; GROUP_SLOTS when
 * absent (and not added) or when the table is full. */
static unsigned group_of(groups *g, const char *s, size_t len, bool add)
{
    uint64_t h = fnv1a(s, len);
    unsigned i = (unsigned)h & (GROUP_SLOTS - 1);
    while (g->key[i]) {
        if (g->hash[i] == h && g->len[i] == len && memcmp(g->key[i], s, len) == 0)
            return i;
        i = (i + 1) & (GROUP_SLOTS - 1);
    }
    if (!add || g->used >= GROUP_SLOTS / 2)
        return GROUP_SLOTS;
    g->used++;
    g->hash[i] = h;
    g->key[i] = s;
    g->len[i] = (uint32_t)len;
    return i;
}

/* The slot with the largest score; ties go to the smaller key, so the
 * answer does not depend on the hash function. */
static unsigned best_group(const groups *g, const double *score)
{
    unsigned best = GROUP_SLOTS;
    for (unsigned i = 0; i < GROUP_SLOTS; i++) {
        if (!g->key[i])
            continue;
        if (best == GROUP_SLOTS || score[i] > score[best])
            best = i;
        else if (score[i] == score[best]) {
            size_t n = g->len[i] < g->len[best] ? g->len[i] : g->len[best];
            int c = memcmp(g->key[i], g->key[best], n);
            if (c < 0 || (c == 0 && g->len[i] < g->len[best]))
                best = i;
        }
    }
    return best;
}

/*
 * Sum weight(row) into one score per product name (or, with `word` 1, per
 * second word of the name: the material).  On success the caller owns
 * *out and *score (free both); returns 0, 1 (no memory) or 2 (more
 * distinct keys than the table holds).
 */
static int group_names(const demo_table *t, int word, bool by_value, groups **out, double **score)
{
    groups *g = calloc(1, sizeof *g);
    double *s = calloc(GROUP_SLOTS, sizeof *s);
    if (!g || !s) {
        free(g);
        free(s);
        return 1;
    }
    for (uint64_t i = 0; i < t->rows; i++) {
        size_t len;
        const char *name = demo_product(t, i, &len);
        if (word) {
            const char *a = memchr(name, ' ', len), *end = name + len;
            const char *b = a ? memchr(a + 1, ' ', (size_t)(end - a - 1)) : NULL;
            if (b) {
                len = (size_t)(b - a - 1);
                name = a + 1;
            }
        }
        unsigned k = group_of(g, name, len, true);
        if (k == GROUP_SLOTS) {
            free(g);
            free(s);
            return 2;
        }
        s[k] += by_value ? demo_value(t, i) : 1.0;
    }
    *out = g;
    *score = s;
    return 0;
}

/* The winning key of a grouping as the result's text, its score in v[0]
 * and its share of all scores in v[1]. */
static void best_into(const groups *g, const double *score, demo_result *r)
{
    unsigned best = best_group(g, score);
    double total = 0;
    for (unsigned i = 0; i < GROUP_SLOTS; i++)
        total += score[i];
    if (best == GROUP_SLOTS)
        return;
    size_t len = g->len[best] < sizeof r->text - 1 ? g->len[best] : sizeof r->text - 1;
    memcpy(r->text, g->key[best], len);
    r->v[0] = score[best];
    r->v[1] = score[best] / total;
    r->n[0] = g->used;
}

static int grouped_best(const demo_table *t, int word, bool by_value, demo_result *r)
{
    groups *g;
    double *score;
    int rc = group_names(t, word, by_value, &g, &score);
    if (rc)
        return rc;
    best_into(g, score, r);
    free(g);
    free(score);
    return 0;
}

int an_best_seller(const demo_table *t, demo_result *r)
{
    return grouped_best(t, 0, false, r);
}

int an_top_product(const demo_table *t, demo_result *r)
{
    return grouped_best(t, 0, true, r);
}

int an_top_material(const demo_table *t, demo_result *r)
{
    return grouped_best(t, 1, true, r);
}

/* Shannon entropy of the orders' spread over product names, in bits. */
int an_product_entropy(const demo_table *t, demo_result *r)
{
    groups *g;
    double *count;
    int rc = group_names(t, 0, false, &g, &count);
    if (rc)
        return rc;
    double h = 0;
    for (unsigned i = 0; i < GROUP_SLOTS; i++)
        if (count[i] > 0) {
            double p = count[i] / (double)t->rows;
            h -= p * log2(p);
        }
    r->v[0] = h;
    r->n[0] = g->used;
    free(g);
    free(count);
    return 0;
}

int an_steel(const demo_table *t, demo_result *r)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < t->rows; i++) {
        size_t len;
        const char *name = demo_product(t, i, &len);
        n += memmem(name, len, "steel", 5) != NULL;
    }
    r->n[0] = n;
    r->v[0] = (double)n / (double)t->rows;
    return 0;
}

/* A join: each order's name looked up in the products table, whose list
 * price it is compared with.  n[1] counts names the table lacks. */
int an_below_list(const demo_table *t, demo_result *r)
{
    groups *g = calloc(1, sizeof *g);
    double *list = calloc(GROUP_SLOTS, sizeof *list);
    if (!g || !list) {
        free(g);
        free(list);
        return 1;
    }
    for (unsigned p = 0; p < DEMO_PRODUCTS; p++) {
        const char *name = t->name_chars + t->name_off[p];
        unsigned k = group_of(g, name, (size_t)(t->name_off[p + 1] - t->name_off[p] - 1), true);
        if (k < GROUP_SLOTS)
            list[k] = t->list_price[p];
    }
    uint64_t below = 0, unknown = 0;
    double ratio = 0;
    for (uint64_t i = 0; i < t->rows; i++) {
        size_t len;
        const char *name = demo_product(t, i, &len);
        unsigned k = group_of(g, name, len, false);
        if (k == GROUP_SLOTS) {
            unknown++;
            continue;
        }
        below += t->price[i] < list[k];
        ratio += t->price[i] / list[k];
    }
    r->n[0] = below;
    r->n[1] = unknown;
    r->v[0] = unknown < t->rows ? ratio / (double)(t->rows - unknown) - 1 : 0;
    free(g);
    free(list);
    return 0;
}
