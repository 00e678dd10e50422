#!/bin/sh
# run.sh BUILD_DIR SECONDS -- fuzz every target built in BUILD_DIR/tests/fuzz
# for SECONDS in total (the budget is split evenly between the targets).
# Each target starts from the committed seed corpus; what it discovers goes
# to BUILD_DIR/tests/fuzz/work-<target>/ (the committed corpus is not
# touched), and a crash leaves its input there as crash-* and fails.
set -eu
build=$1
budget=${2:-60}
src=$(cd "$(dirname "$0")" && pwd)
targets=$(ls "$build"/tests/fuzz/fuzz_* 2>/dev/null | grep -v '\.' || true)
[ -n "$targets" ] || { echo "run.sh: no fuzz targets in $build/tests/fuzz" >&2; exit 1; }
n=$(echo "$targets" | wc -l)
each=$((budget / n))
[ "$each" -ge 1 ] || each=1
echo "fuzzing $n target(s), ${each}s each (${budget}s budget in total)"
for t in $targets; do
    name=$(basename "$t")
    work="$build/tests/fuzz/work-$name"
    mkdir -p "$work"
    echo "## $name: ${each}s, corpus $work + $src/corpus"
    "$t" -max_total_time="$each" -max_len=16384 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$work/" "$work" "$src/corpus"
done
