#!/usr/bin/env python3
"""py_pool.py -- the Python side of bench_proc: what crew's process pools
are compared with when a Python user runs work in processes.

    py_pool.py tasks  --workers W --n N --n1 N1 --chunks 1,10,100 [--peers L]
    py_pool.py memory --workers W --mib M --mode arg|fork

tasks: the empty-task throughput of concurrent.futures.ProcessPoolExecutor
("futures") and multiprocessing.Pool ("mp"), each with W workers, started
before the timing (crew's pool is open before its timing too).  Each maps
f(x) = 2x + 1 over range(n) once per chunksize; n is N1 for chunksize 1
(one pickle round trip per task is slow, so fewer tasks keep the run
short) and N otherwise.  Every result is checked.  One line per timing:

    PEER CHUNKSIZE TASKS SECONDS

memory: W multiprocessing workers each hold M MiB of bytes and have read
all of it; the sum of their PSS (and of their private bytes) is printed
while they hold it:

    memory MODE W PSS_KB USS_KB

  --mode arg   the data is made after the pool, then passed to each worker
               as the argument of its task (pickled, sent, unpickled: what
               pool.map(f, [data] * W) does);
  --mode fork  the data is a global made before the pool, and the workers,
               forked, read it without it being passed: Python's best case,
               shown for reference.

Debian's stock python3 only: no module outside the standard library.
Anything wrong makes the script exit with status 1 after saying why.
"""
import argparse
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def fail(msg):
    print(f"py_pool.py: {msg}", file=sys.stderr)
    sys.exit(1)


def echo(x):
    """The empty task: a small argument in, a small result out."""
    return 2 * x + 1


def start_workers(pool, workers):
    """Make every worker exist before anything is timed.  Both kinds of
    pool may start processes lazily; W tasks that sleep keep W busy at once."""
    list(pool.map(time.sleep, [0.05] * workers))


def run_tasks(args):
    chunks = [int(c) for c in args.chunks.split(",") if c]
    peers = args.peers.split(",") if args.peers else ["futures", "mp"]
    print(f"# python {sys.version.split()[0]}, start method "
          f"{mp.get_start_method()}", flush=True)
    for peer in ("futures", "mp"):
        if peer not in peers:
            continue
        if peer == "futures":
            pool = ProcessPoolExecutor(max_workers=args.workers)
        else:
            pool = mp.Pool(args.workers)
        start_workers(pool, args.workers)
        for chunk in chunks:
            n = args.n1 if chunk == 1 else args.n
            t0 = time.perf_counter()
            out = list(pool.map(echo, range(n), chunksize=chunk))
            t = time.perf_counter() - t0
            # Checked outside the timing, like every crew result.
            if len(out) != n or any(out[i] != 2 * i + 1 for i in range(n)):
                fail(f"{peer} chunksize {chunk}: wrong results")
            print(f"{peer} {chunk} {n} {t:.6f}", flush=True)
        if peer == "futures":
            pool.shutdown()
        else:
            pool.close()
            pool.join()


def smaps_kb(pid):
    """(Pss, Private_Clean + Private_Dirty) of a process, in kB."""
    pss = uss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key == "Pss":
                pss = int(rest.split()[0])
            elif key in ("Private_Clean", "Private_Dirty"):
                uss += int(rest.split()[0])
    return pss, uss


# Set in each worker by hold_init: where to say "I hold it", what to wait for.
_held = None
_release = None
# The data of --mode fork, made before the pool so the workers inherit it.
_inherited = None


def hold_init(held, release):
    global _held, _release
    _held, _release = held, release


def hold(data):
    """Read every byte, say so, and keep the data until the parent has
    measured.  Blocking here also means no worker takes a second task, so
    W tasks land on W different workers."""
    if data is None:
        data = _inherited
    count = data.count(b"\xff")
    _held.put(os.getpid())
    if not _release.wait(600):
        return -1
    return count


def run_memory(args):
    size = args.mib << 20
    w = args.workers
    ctx = mp.get_context("fork") if args.mode == "fork" else mp.get_context()
    global _inherited
    if args.mode == "fork":
        _inherited = bytes(range(256)) * (size // 256)
    held, release = ctx.Queue(), ctx.Event()
    pool = ctx.Pool(w, initializer=hold_init, initargs=(held, release))
    if args.mode == "arg":
        data = bytes(range(256)) * (size // 256)
        pending = pool.map_async(hold, [data] * w, chunksize=1)
    else:
        pending = pool.map_async(hold, [None] * w, chunksize=1)
    pids = [held.get(timeout=600) for _ in range(w)]
    if len(set(pids)) != w:
        fail(f"memory: {w} tasks ran on {len(set(pids))} workers")
    pss = uss = 0
    for pid in pids:
        p, u = smaps_kb(pid)
        pss += p
        uss += u
    release.set()
    counts = pending.get(timeout=600)
    pool.close()
    pool.join()
    if counts != [size // 256] * w:
        fail(f"memory: a worker read {counts}, not {size // 256} bytes 0xff each")
    print(f"memory {args.mode} {w} {pss} {uss}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tasks")
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--n", type=int, default=200000)
    t.add_argument("--n1", type=int, default=20000)
    t.add_argument("--chunks", default="1,10,100,1000,10000")
    t.add_argument("--peers", default="")
    m = sub.add_parser("memory")
    m.add_argument("--workers", type=int, default=2)
    m.add_argument("--mib", type=int, default=1024)
    m.add_argument("--mode", choices=("arg", "fork"), default="arg")
    args = ap.parse_args()
    if args.cmd == "tasks":
        run_tasks(args)
    else:
        run_memory(args)


if __name__ == "__main__":
    main()
