#!/bin/sh
# run.sh BUILD_DIR [FILTER] -- run every benchmark built in BUILD_DIR/bench
# (or those whose name contains FILTER), one after another, so that no two
# measurements share the CPUs.
set -eu
dir=$1/bench
filter=${2:-}
echo "# machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
echo "# date: $(date -u +%Y-%m-%dT%H:%MZ)"
for b in "$dir"/bench_*; do
    [ -x "$b" ] || continue
    case "$(basename "$b")" in *"$filter"*) ;; *) continue ;; esac
    echo "## $(basename "$b")"
    "$b"
done
