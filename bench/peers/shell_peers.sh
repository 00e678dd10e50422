#!/bin/sh
# shell_peers.sh PEER TASKS WORKERS -- the command-line side of bench_proc:
# run TASKS trivial commands (`true`, one process per task), WORKERS at a
# time, the way a shell user spreads work over processes, and print
#
#     PEER 1 TASKS SECONDS
#
# (the 1: one task per command, the chunk column py_pool.py prints too),
# after a "# " line naming the tool's version.
#   parallel   seq TASKS | parallel -j WORKERS true      (GNU parallel)
#   xargs      seq TASKS | xargs -P WORKERS -n 1 true
# A peer whose tool is missing prints "skip PEER: why" and succeeds; a
# command that fails makes the script fail (set -e), so a task that did not
# run is never counted as a fast one.
set -eu
peer=$1
n=$2
w=$3

now_ns() { date +%s%N; }

case $peer in
parallel)
    if ! command -v parallel >/dev/null 2>&1; then
        echo "skip parallel: GNU parallel is not installed (Debian package parallel)"
        exit 0
    fi
    echo "# $(parallel --version | head -n 1)"
    # --will-cite: the notice parallel prints otherwise is not a failure.
    t0=$(now_ns)
    seq "$n" | parallel --will-cite -j "$w" true
    t1=$(now_ns)
    ;;
xargs)
    echo "# $(xargs --version | head -n 1)"
    t0=$(now_ns)
    seq "$n" | xargs -P "$w" -n 1 true
    t1=$(now_ns)
    ;;
*)
    echo "shell_peers.sh: unknown peer '$peer' (parallel or xargs)" >&2
    exit 2
    ;;
esac
awk -v p="$peer" -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s 1 %d %.6f\n", p, n, (b - a) / 1e9 }'
