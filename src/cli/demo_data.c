/*
 * demo_data.c -- the order book `crew demo` analyses: built in parallel in
 * an arena, described by a catalog, frozen.
 *
 * Every value is a pure function of its row number: row i draws three
 * 64-bit words, splitmix64 of the counters 3i, 3i+1 and 3i+2 in stream 1,
 * and takes its fields from their bits (products and customers have
 * streams 2 and 3).  A counter-based generator has no state to hand from
 * one row to the next, so any worker can write any range of rows, and the
 * data set is the same for 1 worker or 64.  tests/cli/demo_expect.py
 * recomputes results from this definition, so a change here must change
 * the script too.
 *
 * The product name column is stored the way `crew pack` stores a text
 * column: the names back to back, NUL-terminated, and rows + 1 offsets.
 * Its offsets depend on the lengths of all earlier names, so it is
 * written in two passes over blocks of rows: the first sums each block's
 * bytes, a prefix sum places the blocks, the second writes them.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/demo.h"

#define BLOCK_ROWS ((uint64_t)1 << 16)

static const char *const adjectives[16] = {
    "small", "large", "classic", "modern", "rustic", "compact", "deluxe", "folding",
    "vintage", "sturdy", "slim", "round", "square", "tall", "portable", "quiet",
};
static const char *const materials[16] = {
    "oak", "pine", "walnut", "steel", "brass", "glass", "bamboo", "leather",
    "linen", "wool", "copper", "marble", "ceramic", "cotton", "rattan", "teak",
};
static const char *const nouns[16] = {
    "desk", "chair", "lamp", "shelf", "table", "stool", "bench", "mirror",
    "clock", "rug", "vase", "cabinet", "bed", "sofa", "tray", "basket",
};
static const char *const stores[DEMO_STORES] = {
    "Lisbon", "Porto", "Madrid", "Seville", "Valencia", "Barcelona", "Lyon", "Paris",
    "Lille", "Brussels", "Antwerp", "Rotterdam", "Amsterdam", "Hamburg", "Berlin", "Leipzig",
    "Dresden", "Prague", "Vienna", "Graz", "Munich", "Zurich", "Geneva", "Milan",
    "Turin", "Genoa", "Bologna", "Florence", "Rome", "Naples", "Athens", "Sofia",
    "Bucharest", "Budapest", "Bratislava", "Krakow", "Warsaw", "Gdansk", "Vilnius", "Riga",
    "Tallinn", "Helsinki", "Stockholm", "Oslo", "Copenhagen", "Aarhus", "Dublin", "Cork",
};
static const char *const segments[DEMO_SEGMENTS] = {
    "consumer", "small business", "enterprise", "education",
};

/* splitmix64 of counter i in stream s: statistically independent words
 * for any (s, i), computed in any order. */
static inline uint64_t mix(uint64_t s, uint64_t i)
{
    uint64_t x = (s << 56) + i + 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* Product p's name, "adjective material noun", into buf (>= 32 bytes). */
static size_t product_name(unsigned p, char *buf)
{
    const char *w[3] = {adjectives[p >> 8], materials[(p >> 4) & 15], nouns[p & 15]};
    size_t n = 0;
    for (int k = 0; k < 3; k++) {
        size_t len = strlen(w[k]);
        memcpy(buf + n, w[k], len);
        n += len;
        buf[n++] = k < 2 ? ' ' : '\0';
    }
    return n - 1;
}

/* List price of product p in cents: $0.99 to about $500, most of them cheap. */
static uint64_t list_cents(unsigned p)
{
    uint64_t g = mix(2, p);
    return 99 + (g % 2000) * ((g >> 32) % 2000) / 80;
}

/* One order's fields, from its row number. */
typedef struct order {
    unsigned product, quantity, discount, store, day;
    uint32_t customer;
    uint64_t cents;
} order;

static inline unsigned row_product(uint64_t h0)
{
    /* x^3 of a uniform x: popular products first, a long tail after;
     * times an odd number mod 4096 to scatter them over the names. */
    uint64_t x = h0 >> 40, p = (((x * x) >> 24) * x) >> 24;
    return (unsigned)(((p >> 12) * 1237) & (DEMO_PRODUCTS - 1));
}

static inline void row_order(uint64_t i, uint64_t customers, order *o)
{
    uint64_t h0 = mix(1, 3 * i), h1 = mix(1, 3 * i + 1), h2 = mix(1, 3 * i + 2);
    o->product = row_product(h0);
    uint64_t list = list_cents(o->product);
    /* Mostly one item, sometimes dozens; fewer of the dearer things. */
    uint64_t xy = (h0 & 0xff) * ((h0 >> 8) & 0xff);
    o->quantity = 1 + (unsigned)(((xy * xy) >> 27) * 20000 / (20000 + list));
    unsigned d = (h0 >> 16) & 0xff;
    o->discount = d < 160 ? 0 : d < 200 ? 5 : d < 225 ? 10 : d < 240 ? 15 : d < 250 ? 20 : 30;
    if (o->quantity >= 10 && o->discount < 10)
        o->discount = 10; /* bulk orders get 10% at least */
    o->store = (unsigned)((((h0 >> 24) & 0xff) * ((h0 >> 32) & 0xff) * DEMO_STORES) >> 16);
    uint64_t u = ((h1 & 0xffffffffu) * (h1 >> 32)) >> 32;
    o->customer = (uint32_t)((u * customers) >> 32);
    /* A quarter of the orders lean to later days (the max of two draws):
     * the shop grows.  One in sixteen weekday ones moves to Saturday. */
    uint64_t a = h2 & 0xffff, b = (h2 >> 16) & 0xffff;
    unsigned day = (unsigned)(((((h2 >> 60) & 3) == 0 && b > a ? b : a) * DEMO_DAYS) >> 16);
    if (day % 7 != 0 && day % 7 != 6 && ((h2 >> 56) & 0xf) == 0 && day + 6 - day % 7 < DEMO_DAYS)
        day += 6 - day % 7;
    o->day = day;
    o->cents = list * (90 + ((h2 >> 32) & 0xffffff) % 21) / 100;
}

uint64_t demo_rows_for(size_t bytes)
{
    /* Numbers (22 bytes), an offset (8) and the name with its NUL, whose
     * mean length is taken from the first rows. */
    enum { SAMPLE = 1 << 16 };
    uint8_t len[DEMO_PRODUCTS];
    char buf[32];
    for (unsigned p = 0; p < DEMO_PRODUCTS; p++)
        len[p] = (uint8_t)product_name(p, buf);
    uint64_t names = 0;
    for (uint64_t i = 0; i < SAMPLE; i++)
        names += len[row_product(mix(1, 3 * i))] + 1u;
    uint64_t rows = (uint64_t)bytes * SAMPLE / (30 * SAMPLE + names);
    return rows ? rows : 1;
}

/* Everything the two passes share. */
typedef struct build {
    uint64_t rows, customers, nblocks;
    double *price;
    uint32_t *quantity, *customer, *day;
    uint8_t *discount, *store, *segment;
    uint64_t *offsets, *block_start;
    char *chars;
    uint8_t name_len[DEMO_PRODUCTS];
    char names[DEMO_PRODUCTS][32];
    struct cli_progress *progress;
} build;

static void size_blocks(void *ctx, size_t lo, size_t hi)
{
    build *b = ctx;
    for (size_t k = lo; k < hi; k++) {
        uint64_t end = (k + 1) * BLOCK_ROWS < b->rows ? (k + 1) * BLOCK_ROWS : b->rows, bytes = 0;
        for (uint64_t i = k * BLOCK_ROWS; i < end; i++)
            bytes += b->name_len[row_product(mix(1, 3 * i))] + 1u;
        b->block_start[k] = bytes;
    }
}

static void fill_blocks(void *ctx, size_t lo, size_t hi)
{
    build *b = ctx;
    for (size_t k = lo; k < hi; k++) {
        uint64_t end = (k + 1) * BLOCK_ROWS < b->rows ? (k + 1) * BLOCK_ROWS : b->rows;
        uint64_t at = b->block_start[k];
        for (uint64_t i = k * BLOCK_ROWS; i < end; i++) {
            order o;
            row_order(i, b->customers, &o);
            b->price[i] = (double)o.cents / 100.0;
            b->quantity[i] = o.quantity;
            b->discount[i] = (uint8_t)o.discount;
            b->store[i] = (uint8_t)o.store;
            b->customer[i] = o.customer;
            b->day[i] = o.day;
            b->offsets[i] = at;
            memcpy(b->chars + at, b->names[o.product], b->name_len[o.product] + 1u);
            at += b->name_len[o.product] + 1u;
        }
        cli_progress_add(b->progress, end - k * BLOCK_ROWS, 0);
    }
}

static void fill_segments(void *ctx, size_t lo, size_t hi)
{
    build *b = ctx;
    for (size_t c = lo; c < hi; c++) {
        unsigned s = mix(3, c) & 0xff;
        b->segment[c] = s < 128 ? 0 : s < 192 ? 1 : s < 240 ? 2 : 3;
    }
}

/* A string data set of n strings, written serially (they are few). */
static int small_strings(crew_arena *a, const char *name, const char *const *s, size_t n,
                         crew_dataset *out)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += strlen(s[i]) + 1;
    crew_ref off = CREW_ARENA_ARRAY(a, uint64_t, n + 1), data = crew_arena_alloc(a, bytes, 1);
    if (!off || !data)
        return CREW_EFULL;
    uint64_t *o = crew_arena_ptr(a, off), at = 0;
    for (size_t i = 0; i < n; i++) {
        o[i] = at;
        size_t len = strlen(s[i]) + 1;
        memcpy((char *)crew_arena_ptr(a, data) + at, s[i], len);
        at += len;
    }
    o[n] = at;
    *out = (crew_dataset){name, CREW_T_STR, n, data, off};
    return 0;
}

/* Allocate `count` elements of type `type` aligned for streaming. */
static void *column(crew_arena *a, crew_dataset *d, const char *name, int type, uint64_t count)
{
    size_t size = crew_type_size(type);
    crew_ref ref = crew_arena_array(a, count, size, 64);
    *d = (crew_dataset){name, type, count, ref, 0};
    return ref ? crew_arena_ptr(a, ref) : NULL;
}

static int build_data(crew *pool, crew_arena *a, build *b)
{
    enum { NSETS = 12 };
    crew_dataset sets[NSETS];
    b->price = column(a, &sets[0], "orders.price", CREW_T_F64, b->rows);
    b->quantity = column(a, &sets[1], "orders.quantity", CREW_T_U32, b->rows);
    b->discount = column(a, &sets[2], "orders.discount", CREW_T_U8, b->rows);
    b->store = column(a, &sets[3], "orders.store", CREW_T_U8, b->rows);
    b->customer = column(a, &sets[4], "orders.customer", CREW_T_U32, b->rows);
    b->day = column(a, &sets[5], "orders.day", CREW_T_U32, b->rows);
    crew_ref off = crew_arena_array(a, b->rows + 1, sizeof(uint64_t), 64);
    b->segment = column(a, &sets[7], "customers.segment", CREW_T_U8, b->customers);
    if (!b->price || !b->quantity || !b->discount || !b->store || !b->customer || !b->day ||
        !off || !b->segment)
        return CREW_EFULL;
    b->offsets = crew_arena_ptr(a, off);

    int rc = crew_for(pool, 0, b->nblocks, 1, size_blocks, b);
    if (rc < 0)
        return rc;
    uint64_t total = 0;
    for (uint64_t k = 0; k < b->nblocks; k++) {
        uint64_t bytes = b->block_start[k];
        b->block_start[k] = total;
        total += bytes;
    }
    crew_ref chars = crew_arena_alloc(a, total, 64);
    if (!chars)
        return CREW_EFULL;
    b->chars = crew_arena_ptr(a, chars);
    b->offsets[b->rows] = total;
    sets[6] = (crew_dataset){"orders.product", CREW_T_STR, b->rows, chars, off};
    if ((rc = crew_for(pool, 0, b->nblocks, 1, fill_blocks, b)) < 0 ||
        (rc = crew_for(pool, 0, b->customers, 0, fill_segments, b)) < 0)
        return rc;

    const char *names[DEMO_PRODUCTS];
    for (unsigned p = 0; p < DEMO_PRODUCTS; p++)
        names[p] = b->names[p];
    double *list = column(a, &sets[8], "products.list_price", CREW_T_F64, DEMO_PRODUCTS);
    if (!list)
        return CREW_EFULL;
    for (unsigned p = 0; p < DEMO_PRODUCTS; p++)
        list[p] = (double)list_cents(p) / 100.0;
    if ((rc = small_strings(a, "products.name", names, DEMO_PRODUCTS, &sets[9])) < 0 ||
        (rc = small_strings(a, "stores.name", stores, DEMO_STORES, &sets[10])) < 0 ||
        (rc = small_strings(a, "segments.name", segments, DEMO_SEGMENTS, &sets[11])) < 0)
        return rc;
    return crew_catalog_write(a, sets, NSETS);
}

int demo_build(crew *pool, uint64_t rows, struct cli_progress *progress, crew_arena **out)
{
    build *b = calloc(1, sizeof *b);
    if (!b)
        return CREW_ENOMEM;
    b->rows = rows;
    b->customers = rows / 4 + 1;
    b->nblocks = (rows + BLOCK_ROWS - 1) / BLOCK_ROWS;
    b->progress = progress;
    b->block_start = malloc(b->nblocks * sizeof *b->block_start);
    size_t longest = 0;
    for (unsigned p = 0; p < DEMO_PRODUCTS; p++) {
        b->name_len[p] = (uint8_t)product_name(p, b->names[p]);
        longest = b->name_len[p] > longest ? b->name_len[p] : longest;
    }
    /* Room for the worst case (every name the longest, every column
     * padded to 64 bytes); reserving address space costs nothing. */
    size_t capacity = rows * (38 + longest + 1) + b->customers + (16u << 20);
    crew_arena *a = NULL;
    int rc = b->block_start ? crew_arena_create(&a, capacity) : CREW_ENOMEM;
    if (rc == 0)
        rc = build_data(pool, a, b);
    if (rc == 0)
        rc = crew_arena_freeze(a);
    free(b->block_start);
    free(b);
    if (rc < 0) {
        crew_arena_close(a);
        return rc;
    }
    *out = a;
    return 0;
}

/* The column `name`, checked to hold `count` elements of `type`. */
static const void *find_array(const crew_arena *a, const char *name, int type, uint64_t count)
{
    crew_dataset d;
    if (crew_catalog_find(a, name, &d) < 0 || d.count != count)
        return NULL;
    return crew_dataset_array(a, &d, type);
}

/* A string column of `count` rows: its offsets and characters, checked. */
static int find_strings(const crew_arena *a, const char *name, uint64_t count,
                        const uint64_t **off, const char **chars)
{
    crew_dataset d;
    int rc = crew_catalog_find(a, name, &d);
    if (rc < 0)
        return rc;
    if (d.type != CREW_T_STR || d.count != count)
        return CREW_EFORMAT;
    *off = CREW_ARENA_GET_ARRAY(a, uint64_t, d.offsets, count + 1);
    *chars = *off ? crew_arena_get(a, d.data, (*off)[count]) : NULL;
    /* The analyses trust these offsets, so the last string must end here. */
    return *chars && (*off)[count] > 0 && (*chars)[(*off)[count] - 1] == '\0' ? 0 : CREW_EFORMAT;
}

int demo_table_open(const crew_arena *a, demo_table *t)
{
    crew_dataset d;
    int rc = crew_catalog_find(a, "orders.price", &d);
    if (rc < 0)
        return rc;
    uint64_t n = d.count;
    demo_table r = {.rows = n};
    r.price = find_array(a, "orders.price", CREW_T_F64, n);
    r.quantity = find_array(a, "orders.quantity", CREW_T_U32, n);
    r.discount = find_array(a, "orders.discount", CREW_T_U8, n);
    r.store = find_array(a, "orders.store", CREW_T_U8, n);
    r.customer = find_array(a, "orders.customer", CREW_T_U32, n);
    r.day = find_array(a, "orders.day", CREW_T_U32, n);
    if (crew_catalog_find(a, "customers.segment", &d) < 0)
        return CREW_EFORMAT;
    r.customers = d.count;
    r.segment = find_array(a, "customers.segment", CREW_T_U8, r.customers);
    r.list_price = find_array(a, "products.list_price", CREW_T_F64, DEMO_PRODUCTS);
    if (!n || !r.price || !r.quantity || !r.discount || !r.store || !r.customer || !r.day ||
        !r.segment || !r.list_price)
        return CREW_EFORMAT;
    const uint64_t *off;
    const char *chars;
    if ((rc = find_strings(a, "orders.product", n, &r.product_off, &r.product_chars)) < 0 ||
        (rc = find_strings(a, "products.name", DEMO_PRODUCTS, &r.name_off, &r.name_chars)) < 0)
        return rc;
    if ((rc = find_strings(a, "stores.name", DEMO_STORES, &off, &chars)) < 0)
        return rc;
    for (unsigned s = 0; s < DEMO_STORES; s++)
        r.store_name[s] = chars + off[s];
    if ((rc = find_strings(a, "segments.name", DEMO_SEGMENTS, &off, &chars)) < 0)
        return rc;
    for (unsigned s = 0; s < DEMO_SEGMENTS; s++)
        r.segment_name[s] = chars + off[s];
    *t = r;
    return 0;
}
