/*
 * demo_list.c -- the list of analyses `crew demo` runs, each with its
 * title, the line that shows its result, a rough cost and whether it is
 * among the headlines printed without --all; and the task that runs one.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/demo.h"

int demo_task(const void *shared, const void *arg, void *result)
{
    const demo_analysis *an = arg;
    return an->fn(shared, result);
}

const char *demo_count(uint64_t n, char *buf, size_t size)
{
    char digits[24], out[32];
    int len = snprintf(digits, sizeof digits, "%" PRIu64, n);
    size_t o = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    snprintf(buf, size, "%s", out);
    return buf;
}

const char *demo_money(double v, char *buf, size_t size)
{
    if (!isfinite(v) || fabs(v) >= 1e18) {
        snprintf(buf, size, "$%g", v);
        return buf;
    }
    /* Round to cents once, then print whole dollars with separators. */
    double cents = round(fabs(v) * 100);
    char whole[32];
    demo_count((uint64_t)(cents / 100), whole, sizeof whole);
    snprintf(buf, size, "%s$%s.%02u", v < 0 && cents > 0 ? "-" : "", whole,
             (unsigned)fmod(cents, 100));
    return buf;
}

/* Day d of the data set (day 0 is Sunday, 1 January 2023) as YYYY-MM-DD. */
static const char *date_of(uint64_t d, char *buf, size_t size)
{
    time_t t = (time_t)(19358 + d) * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%d", &tm);
    return buf;
}

#define SHOW(name) static void name(const demo_result *r, char *b, size_t size)

/* Buffers for the helpers: a show prints at most four numbers. */
#define NUM char m0[40], m1[40], m2[40], m3[40]; (void)m0; (void)m1; (void)m2; (void)m3

SHOW(show_money) { NUM; snprintf(b, size, "%s", demo_money(r->v[0], m0, 40)); }
SHOW(show_count) { NUM; snprintf(b, size, "%s", demo_count(r->n[0], m0, 40)); }
SHOW(show_count_share)
{
    NUM;
    snprintf(b, size, "%s (%.1f%%)", demo_count(r->n[0], m0, 40), 100 * r->v[0]);
}
SHOW(show_corr) { snprintf(b, size, "%+.4f", r->v[0]); }
SHOW(show_price_sd)
{
    NUM;
    snprintf(b, size, "%s (mean %s)", demo_money(r->v[0], m0, 40), demo_money(r->v[1], m1, 40));
}
SHOW(show_range)
{
    NUM;
    snprintf(b, size, "%s to %s", demo_money(r->v[0], m0, 40), demo_money(r->v[1], m1, 40));
}
SHOW(show_items) { snprintf(b, size, "%.3f (most often %" PRIu64 ")", r->v[0], r->n[0]); }
SHOW(show_discounted)
{
    NUM;
    snprintf(b, size, "%s, %.2f%% off on average", demo_count(r->n[0], m0, 40), r->v[0]);
}
SHOW(show_price_q)
{
    NUM;
    snprintf(b, size, "%s (p25 %s, p90 %s, p99 %s)", demo_money(r->v[1], m0, 40),
             demo_money(r->v[0], m1, 40), demo_money(r->v[2], m2, 40),
             demo_money(r->v[3], m3, 40));
}
SHOW(show_value_q)
{
    NUM;
    snprintf(b, size, "%s (p50 %s, p90 %s)", demo_money(r->v[2], m0, 40),
             demo_money(r->v[0], m1, 40), demo_money(r->v[1], m2, 40));
}
SHOW(show_clusters)
{
    NUM;
    snprintf(b, size, "%s, %s, %s, %s", demo_money(r->v[0], m0, 40), demo_money(r->v[1], m1, 40),
             demo_money(r->v[2], m2, 40), demo_money(r->v[3], m3, 40));
}
SHOW(show_named_money)
{
    NUM;
    snprintf(b, size, "%s, %s (%.1f%%)", r->text, demo_money(r->v[0], m0, 40), 100 * r->v[1]);
}
SHOW(show_named_orders)
{
    NUM;
    snprintf(b, size, "%s, %s orders", r->text, demo_count(r->n[0], m0, 40));
}
SHOW(show_named_share) { snprintf(b, size, "%s (%.1f%%)", r->text, 100 * r->v[0]); }
SHOW(show_best_day)
{
    NUM;
    snprintf(b, size, "%s, %s", date_of(r->n[0], m0, 40), demo_money(r->v[0], m1, 40));
}
SHOW(show_growth) { snprintf(b, size, "%+.1f%%", 100 * r->v[0]); }
SHOW(show_trend) { snprintf(b, size, "%+.2f%% a month", 100 * r->v[0]); }
SHOW(show_streak)
{
    NUM;
    snprintf(b, size, "%" PRIu64 " days, to %s", r->n[0], date_of(r->n[1], m0, 40));
}
SHOW(show_top_customer)
{
    NUM;
    snprintf(b, size, "#%" PRIu64 ", %s; the top 10: %.3f%% of revenue", r->n[0],
             demo_money(r->v[0], m0, 40), 100 * r->v[1]);
}
SHOW(show_gini) { snprintf(b, size, "%.4f", r->v[0]); }
SHOW(show_best_seller)
{
    NUM;
    snprintf(b, size, "%s, %s orders", r->text, demo_count((uint64_t)r->v[0], m0, 40));
}
SHOW(show_top_product)
{
    NUM;
    snprintf(b, size, "%s, %s", r->text, demo_money(r->v[0], m0, 40));
}
SHOW(show_material) { snprintf(b, size, "%s (%.1f%% of revenue)", r->text, 100 * r->v[1]); }
SHOW(show_below_list)
{
    NUM;
    int n = snprintf(b, size, "%s, prices %+.2f%% from list on average",
                     demo_count(r->n[0], m0, 40), 100 * r->v[0]);
    if (r->n[1] && n > 0 && (size_t)n < size)
        snprintf(b + n, size - (size_t)n, "; %s names not in the product table",
                 demo_count(r->n[1], m1, 40));
}
SHOW(show_entropy)
{
    NUM;
    snprintf(b, size, "%.3f bits over %s names", r->v[0], demo_count(r->n[0], m0, 40));
}

/* In the order they are printed; crew_run gets them costliest first. */
const demo_analysis demo_analyses[] = {
    {"total revenue", an_revenue, show_money, 1, true},
    {"mean unit price", an_mean_price, show_money, 1, true},
    {"median unit price", an_price_quantiles, show_price_q, 1, true},
    {"unit price standard deviation", an_price_sd, show_price_sd, 1, false},
    {"unit prices", an_price_range, show_range, 1, false},
    {"unit prices beyond 3 deviations", an_price_outliers, show_count, 1, false},
    {"99th percentile order value", an_value_quantiles, show_value_q, 1, true},
    {"median order value, by selection", an_value_median, show_money, 2, false},
    {"order value clusters (k-means)", an_value_clusters, show_clusters, 7, false},
    {"orders over $1,000", an_big_orders, show_count, 1, false},
    {"items per order", an_mean_items, show_items, 1, false},
    {"orders of 10 or more items", an_bulk_orders, show_count_share, 1, true},
    {"discounted orders", an_discounted, show_discounted, 1, false},
    {"price-quantity correlation", an_corr_price_qty, show_corr, 1, true},
    {"discount-quantity correlation", an_corr_discount_qty, show_corr, 1, false},
    {"top store by revenue", an_top_store, show_named_money, 1, true},
    {"busiest store", an_busiest_store, show_named_orders, 1, false},
    {"best day", an_best_day, show_best_day, 1, true},
    {"best weekday", an_best_weekday, show_named_share, 1, false},
    {"revenue growth, 2nd year on 1st", an_growth, show_growth, 1, true},
    {"monthly revenue trend", an_monthly_trend, show_trend, 1, false},
    {"longest rise of daily revenue", an_up_streak, show_streak, 1, false},
    {"customers who ordered", an_distinct_customers, show_count, 1, true},
    {"repeat customers", an_repeat_customers, show_count_share, 1, false},
    {"customers in both years", an_loyal_customers, show_count_share, 1, false},
    {"biggest customer", an_top_customers, show_top_customer, 3, false},
    {"customer spend inequality (Gini)", an_gini, show_gini, 9, true},
    {"median customer spend", an_median_customer, show_money, 4, false},
    {"top customer segment", an_top_segment, show_named_share, 1, false},
    {"best-selling product", an_best_seller, show_best_seller, 5, true},
    {"top product by revenue", an_top_product, show_top_product, 5, false},
    {"top material", an_top_material, show_material, 4, false},
    {"orders of steel products", an_steel, show_count_share, 5, false},
    {"orders below list price", an_below_list, show_below_list, 5, false},
    {"spread of orders over products", an_product_entropy, show_entropy, 5, false},
};
const size_t demo_nanalyses = sizeof demo_analyses / sizeof demo_analyses[0];
