#!/usr/bin/env python3
# demo_expect.py ROWS -- the lines `crew demo --all` must print for some of
# its results over ROWS orders, recomputed here from the data set's
# definition (src/cli/demo_data.c: splitmix64 of the row number) and the
# analyses' (src/cli/demo_stats.c, demo_groups.c), without any of crew's code.
import datetime
import math
import sys

M64 = (1 << 64) - 1
ADJ = ("small large classic modern rustic compact deluxe folding vintage sturdy slim round "
       "square tall portable quiet").split()
MAT = ("oak pine walnut steel brass glass bamboo leather linen wool copper marble ceramic cotton "
       "rattan teak").split()
NOUN = ("desk chair lamp shelf table stool bench mirror clock rug vase cabinet bed sofa tray "
        "basket").split()
STORES = ("Lisbon Porto Madrid Seville Valencia Barcelona Lyon Paris Lille Brussels Antwerp "
          "Rotterdam Amsterdam Hamburg Berlin Leipzig Dresden Prague Vienna Graz Munich Zurich "
          "Geneva Milan Turin Genoa Bologna Florence Rome Naples Athens Sofia Bucharest Budapest "
          "Bratislava Krakow Warsaw Gdansk Vilnius Riga Tallinn Helsinki Stockholm Oslo "
          "Copenhagen Aarhus Dublin Cork").split()
DAYS = 730


def mix(s, i):
    x = ((s << 56) + i + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def name(p):
    return f"{ADJ[p >> 8]} {MAT[(p >> 4) & 15]} {NOUN[p & 15]}"


def list_cents(p):
    g = mix(2, p)
    return 99 + (g % 2000) * ((g >> 32) % 2000) // 80


def orders(rows):
    customers = rows // 4 + 1
    for i in range(rows):
        h0, h1, h2 = mix(1, 3 * i), mix(1, 3 * i + 1), mix(1, 3 * i + 2)
        x = h0 >> 40
        p = (((x * x) >> 24) * x) >> 24
        product = ((p >> 12) * 1237) & 4095
        lst = list_cents(product)
        xy = (h0 & 0xFF) * ((h0 >> 8) & 0xFF)
        q = 1 + ((xy * xy) >> 27) * 20000 // (20000 + lst)
        d = (h0 >> 16) & 0xFF
        disc = next(pct for limit, pct in ((160, 0), (200, 5), (225, 10), (240, 15), (250, 20),
                                            (256, 30)) if d < limit)
        if q >= 10 and disc < 10:
            disc = 10
        store = (((h0 >> 24) & 0xFF) * ((h0 >> 32) & 0xFF) * 48) >> 16
        u = ((h1 & 0xFFFFFFFF) * (h1 >> 32)) >> 32
        customer = (u * customers) >> 32
        a, b = h2 & 0xFFFF, (h2 >> 16) & 0xFFFF
        day = ((b if ((h2 >> 60) & 3) == 0 and b > a else a) * DAYS) >> 16
        if day % 7 not in (0, 6) and ((h2 >> 56) & 0xF) == 0 and day + 6 - day % 7 < DAYS:
            day += 6 - day % 7
        cents = lst * (90 + ((h2 >> 32) & 0xFFFFFF) % 21) // 100
        yield cents / 100.0, q, disc, store, customer, day, name(product)


def count(n):
    return f"{n:,}"


def money(v):
    # As the demo prints it: round |v| * 100 half away from zero, once.
    c = abs(v) * 100
    r = math.floor(c)
    if c - r >= 0.5:
        r += 1
    return ("-" if v < 0 and r > 0 else "") + f"${r // 100:,}.{r % 100:02d}"


def line(title, text):
    print(f"  {title:<34} {text}")


def main():
    rows = int(sys.argv[1])
    total, bulk = 0.0, 0
    prices, buyers, per_name = [], set(), {}
    per_day, per_store = [0.0] * DAYS, [0.0] * 48
    for price, q, disc, store, customer, day, nm in orders(rows):
        value = price * q * (100 - disc) / 100.0
        total += value
        bulk += q >= 10
        prices.append(round(price * 100))
        buyers.add(customer)
        per_name[nm] = per_name.get(nm, 0) + 1
        per_day[day] += value
        per_store[store] += value
    print(f"data set: {count(rows)} orders of 4,096 products in 48 stores "
          f"by {count(rows // 4 + 1)} customers;")
    line("total revenue", money(total))
    prices.sort()
    q = [prices[int(f * (rows - 1))] / 100.0 for f in (0.25, 0.5, 0.9, 0.99)]
    line("median unit price",
         f"{money(q[1])} (p25 {money(q[0])}, p90 {money(q[2])}, p99 {money(q[3])})")
    line("orders of 10 or more items", f"{count(bulk)} ({100 * bulk / rows:.1f}%)")
    best = max(range(48), key=lambda s: (per_store[s], -s))
    share = per_store[best] / sum(per_store)
    line("top store by revenue", f"{STORES[best]}, {money(per_store[best])} ({100 * share:.1f}%)")
    d = max(range(DAYS), key=lambda k: (per_day[k], -k))
    date = datetime.date(2023, 1, 1) + datetime.timedelta(days=d)
    line("best day", f"{date.isoformat()}, {money(per_day[d])}")
    line("customers who ordered", count(len(buyers)))
    top = min(per_name, key=lambda k: (-per_name[k], k))
    line("best-selling product", f"{top}, {count(per_name[top])} orders")


main()
