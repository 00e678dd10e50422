/*
 * demo.h -- what the three parts of `crew demo` share: the data set as the
 * analyses see it (demo_data.c builds it), the analyses (demo_stats.c), and
 * the command that runs them (demo.c).
 *
 * The data set is a shop's order book: one row per order, in columns
 * (price, quantity, discount, store, customer, day, product name), plus
 * three small tables (products, stores, customers).  Every value is a pure
 * function of its row number (splitmix64 of a counter), so the data is the
 * same for any number of workers, and a script can recompute any result.
 */
#ifndef CREW_CLI_DEMO_H
#define CREW_CLI_DEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crew.h"

#define DEMO_PRODUCTS 4096  /* adjective x material x noun, 16 of each */
#define DEMO_STORES 48
#define DEMO_SEGMENTS 4
#define DEMO_DAYS 730       /* two years, day 0 a Sunday */

/*
 * The columns, resolved from the arena's catalog.  The arrays point into
 * the frozen arena; the struct itself is ordinary memory, passed to every
 * task as crew_run's `shared`.
 */
typedef struct demo_table {
    uint64_t rows;
    const double *price;          /* orders.price: unit price in dollars (whole cents) */
    const uint32_t *quantity;     /* orders.quantity: 1..64 items */
    const uint8_t *discount;      /* orders.discount: percent, 0..30 */
    const uint8_t *store;         /* orders.store: index into store names */
    const uint32_t *customer;     /* orders.customer: index into customers */
    const uint32_t *day;          /* orders.day: 0..DEMO_DAYS-1 */
    const uint64_t *product_off;  /* orders.product: rows + 1 offsets ... */
    const char *product_chars;    /* ... into these NUL-terminated names */
    uint64_t customers;
    const uint8_t *segment;       /* customers.segment: index into segment names */
    const double *list_price;     /* products.list_price, by product number */
    const uint64_t *name_off;     /* products.name: DEMO_PRODUCTS + 1 offsets ... */
    const char *name_chars;       /* ... into these */
    const char *store_name[DEMO_STORES];
    const char *segment_name[DEMO_SEGMENTS];
} demo_table;

/* Row i's product name, and its length. */
static inline const char *demo_product(const demo_table *t, uint64_t i, size_t *len)
{
    *len = (size_t)(t->product_off[i + 1] - t->product_off[i] - 1);
    return t->product_chars + t->product_off[i];
}

/* An order's value: unit price times quantity, less the discount. */
static inline double demo_value(const demo_table *t, uint64_t i)
{
    return t->price[i] * (double)t->quantity[i] * (double)(100 - t->discount[i]) / 100.0;
}

/* ---- demo_data.c ---------------------------------------------------------- */

/* Rows for an arena of about `bytes`. */
uint64_t demo_rows_for(size_t bytes);

/*
 * Build the order book of `rows` rows in a new arena with `pool`, write its
 * catalog, freeze it.  `progress` (may be NULL) counts rows as they are
 * written.  Returns 0 and sets *out, or a CREW_E... code.
 */
struct cli_progress;
int demo_build(crew *pool, uint64_t rows, struct cli_progress *progress, crew_arena **out);

/* Resolve the columns of a frozen demo arena through its catalog: 0, or a
 * CREW_E... code (CREW_EFORMAT: a data set is missing or has a wrong shape). */
int demo_table_open(const crew_arena *a, demo_table *t);

/* ---- demo_list.c ------------------------------------------------------------ */

/* What one analysis produces: numbers and at most one name.  Zeroed before
 * each run, so two runs can be compared byte for byte. */
typedef struct demo_result {
    double v[4];
    uint64_t n[4];
    char text[64];
} demo_result;

typedef struct demo_analysis {
    const char *title;      /* "total revenue" */
    int (*fn)(const demo_table *t, demo_result *r);   /* 0, or 1: out of memory */
    void (*show)(const demo_result *r, char *buf, size_t size);
    unsigned cost;          /* about tenths of a second at 1 GiB: costly ones start first */
    bool headline;          /* shown without --all */
} demo_analysis;

extern const demo_analysis demo_analyses[];
extern const size_t demo_nanalyses;

/* The crew_task_fn that runs the demo_analysis at `arg` over the
 * demo_table at `shared` into the demo_result at `result`. */
int demo_task(const void *shared, const void *arg, void *result);

/* "1,234,567" and "$1,234.57" into buf. */
const char *demo_count(uint64_t n, char *buf, size_t size);
const char *demo_money(double v, char *buf, size_t size);

/* ---- demo_stats.c: the numeric analyses ----------------------------------- */

int an_revenue(const demo_table *t, demo_result *r);
int an_mean_price(const demo_table *t, demo_result *r);
int an_price_sd(const demo_table *t, demo_result *r);
int an_price_range(const demo_table *t, demo_result *r);
int an_mean_items(const demo_table *t, demo_result *r);
int an_bulk_orders(const demo_table *t, demo_result *r);
int an_discounted(const demo_table *t, demo_result *r);
int an_big_orders(const demo_table *t, demo_result *r);
int an_price_outliers(const demo_table *t, demo_result *r);
int an_corr_price_qty(const demo_table *t, demo_result *r);
int an_corr_discount_qty(const demo_table *t, demo_result *r);
int an_price_quantiles(const demo_table *t, demo_result *r);
int an_value_quantiles(const demo_table *t, demo_result *r);
int an_value_median(const demo_table *t, demo_result *r);
int an_value_clusters(const demo_table *t, demo_result *r);
double demo_select(double *s, size_t n, size_t k);

/* ---- demo_groups.c: the group-bys ----------------------------------------- */

int an_top_store(const demo_table *t, demo_result *r);
int an_busiest_store(const demo_table *t, demo_result *r);
int an_best_day(const demo_table *t, demo_result *r);
int an_best_weekday(const demo_table *t, demo_result *r);
int an_growth(const demo_table *t, demo_result *r);
int an_monthly_trend(const demo_table *t, demo_result *r);
int an_up_streak(const demo_table *t, demo_result *r);
int an_distinct_customers(const demo_table *t, demo_result *r);
int an_repeat_customers(const demo_table *t, demo_result *r);
int an_top_customers(const demo_table *t, demo_result *r);
int an_gini(const demo_table *t, demo_result *r);
int an_median_customer(const demo_table *t, demo_result *r);
int an_loyal_customers(const demo_table *t, demo_result *r);
int an_top_segment(const demo_table *t, demo_result *r);
int an_best_seller(const demo_table *t, demo_result *r);
int an_top_product(const demo_table *t, demo_result *r);
int an_top_material(const demo_table *t, demo_result *r);
int an_steel(const demo_table *t, demo_result *r);
int an_below_list(const demo_table *t, demo_result *r);
int an_product_entropy(const demo_table *t, demo_result *r);

#endif
