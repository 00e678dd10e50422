#!/bin/sh
# test_demo.sh CREW BUILD_DIR -- `crew demo`: its options, the shape of its
# report, the same results for 1 and 2 workers, results recomputed
# independently by demo_expect.py, and a wrong result caught.
set -eu
crew=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# expect STATUS CMD...: run CMD (stdout to $tmp/out, stderr to $tmp/err)
# and check its exit status.
expect() {
    want=$1; shift
    set +e
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    set -e
    [ "$got" -eq "$want" ] || fail "$* exited $got, not $want: $(head -c 300 "$tmp/err")"
}

# --help: stdout, exit 0.
expect 0 "$crew" demo --help
grep -q '^usage: crew demo \[OPTIONS\]' "$tmp/out" || fail "--help: no usage on stdout"
[ ! -s "$tmp/err" ] || fail "--help wrote to stderr"

# Bad options: exit 2, one message naming the problem, nothing on stdout.
bad() {
    message=$1; shift
    expect 2 "$crew" demo "$@"
    grep -qF "crew demo: $message" "$tmp/err" || fail "demo $*: no '$message' in: $(cat "$tmp/err")"
    [ ! -s "$tmp/out" ] || fail "demo $*: wrote to stdout"
}
bad "unknown option '--bogus'" --bogus
bad "unknown option 'extra'" extra
bad "--size: 'lots' is not a size" --size lots
bad "--size: '12Q' is not a size" --size=12Q
bad "--size 1023.0 KiB is too small" --size 1023K
bad "--size 1000.0 TiB is more than half of this machine's memory" --size 1000T
bad "--size needs a value" --size
bad "--size 0 is too small" --size 0
bad "-j: '0' is not a number of workers" -j 0
bad "-j: 'x' is not a number of workers" -jx
bad "-j: '99999' is not a number of workers" --jobs=99999
bad "-j needs a value" -j

# The report: its lines in order, no progress bar on stderr when told so.
expect 0 "$crew" demo --size 32M --no-progress -j 2
cp "$tmp/out" "$tmp/report"
[ ! -s "$tmp/err" ] || fail "--no-progress: stderr not empty: $(head -c 300 "$tmp/err")"
awk '
    function want(re, what) { if ($0 !~ re) bad = bad " " what }
    NR == 1 { want("^crew demo: [0-9]+ analyses of one shared, read-only data set, " \
                   "on 1 worker, then on 2$", "first line") }
    NR == 2 { want("^data set: [0-9,]+ orders of 4,096 products in 48 stores " \
                   "by [0-9,]+ customers;$", "data set line") }
    NR == 3 { want("^  [0-9.]+ MiB in a frozen arena, 12 data sets in its catalog, " \
                   "built in [0-9.]+ s on 2 workers$", "arena line") }
    NR == 4 { want("^1 worker: [0-9]+ analyses in [0-9.]+ s$", "1-worker line") }
    NR == 5 { want("^2 workers: [0-9]+ analyses in [0-9.]+ s$", "2-worker line") }
    NR == 6 || NR == 20 { want("^$", "blank line " NR) }
    NR == 7 { want("^results \\(12 of [0-9]+ analyses; --all shows every one\\):$", "header") }
    # A title padded to 34 columns, then the value.
    NR >= 8 && NR <= 19 && !(substr($0, 1, 3) ~ /^  [^ ]$/ && substr($0, 37, 2) ~ /^ [^ ]$/) {
        bad = bad " result line " NR
    }
    NR == 21 { want("^speed-up on 2 workers: [0-9.]+x \\([0-9]+ CPUs? usable\\); " \
                    "results identical, bit for bit$", "speed-up line") }
    END { if (NR != 21) bad = bad " " NR " lines"; if (bad) { print bad; exit 1 } }
' "$tmp/report" || fail "report shape: $(cat "$tmp/report")"
analyses=$(sed -n 's/^crew demo: \([0-9]*\) analyses.*/\1/p' "$tmp/report")
analyses=${analyses:-0}
[ "$analyses" -ge 24 ] || fail "only $analyses analyses"

# The results part, without timings, for every analysis.
results() { sed -n '/^results (/,/^$/p' "$1"; }
expect 0 "$crew" demo --size 32M --no-progress --all -j 1
results "$tmp/out" >"$tmp/r1"
expect 0 "$crew" demo --size 32M --no-progress --all -j 2
results "$tmp/out" >"$tmp/r2"
shown=$(grep -c '^  ' "$tmp/r2" || true)
[ "$shown" -eq "$analyses" ] || fail "--all shows $shown of $analyses"
cmp -s "$tmp/r1" "$tmp/r2" || fail "results differ for -j 1 and -j 2: $(diff "$tmp/r1" "$tmp/r2")"
grep -q '^2 workers: ' "$tmp/out" || fail "-j 2: no line for the 2-worker run"
expect 0 "$crew" demo --size 32M --no-progress -j 1
grep -q '^speed-up on 1 worker: [0-9.]*x' "$tmp/out" || fail "-j 1: $(tail -1 "$tmp/out")"

# Results recomputed from the data set's definition, without crew.
if command -v python3 >/dev/null 2>&1; then
    expect 0 "$crew" demo --size 8M --no-progress --all
    rows=$(sed -n 's/^data set: \([0-9,]*\) orders.*/\1/p' "$tmp/out" | tr -d ,)
    [ "${rows:-0}" -gt 100000 ] || fail "8M: only '$rows' rows"
    python3 "$here/demo_expect.py" "$rows" >"$tmp/expected"
    [ "$(wc -l <"$tmp/expected")" -ge 8 ] || fail "demo_expect.py printed too little"
    while IFS= read -r line; do
        grep -qxF -- "$line" "$tmp/out" || fail "expected line missing: '$line'"
    done <"$tmp/expected"
else
    echo "python3 not found: results not recomputed"
fi

# A result that differs between the runs is caught: exit 1, a message
# naming the analysis, and no results printed.
expect 1 env CREW_DEMO_FLIP=3 "$crew" demo --size 4M --no-progress -j 2
grep -qF "crew demo: results differ between 1 worker and 2: 'unit price standard deviation'" \
    "$tmp/err" || fail "flipped bit: $(cat "$tmp/err")"
! grep -q '^results' "$tmp/out" || fail "flipped bit: results printed anyway"

# --progress draws on stderr even when it is not a terminal, and clears it.
expect 0 "$crew" demo --size 4M --progress
grep -q 'building' "$tmp/err" || fail "--progress: no bar on stderr"
grep -q '^results' "$tmp/out" || fail "--progress: no results"

[ "$fails" -eq 0 ] || { echo "$fails failures" >&2; exit 1; }
echo "ok"
