# Description: crew run end to end: records in every format, order, task
# sources, big outputs, failures, streaming, workers changed while running,
# plugin init/fini.  Expected records come from runcheck.py.
set -eu
. "$(dirname "$0")/lib.sh"

# ---- formats, escaping, task lines ---------------------------------------

note "formats"
# Every kind of line a task file may hold: comments, blank lines, blanks
# around the name, tabs, backslashes, quotes, control characters, UTF-8, a
# CR before the newline and inside the line, outputs with newlines and
# beyond the inline area, failures, and a last line with no newline.
python3 - "$T/fmt.tasks" <<'EOF'
import sys
lines = [
    b"# a comment", b"   # an indented comment", b"", b"    ", b"\t",
    b"echo plain", b"echo   two  inner  blanks and trailing  ",
    b"\techo\tafter tabs\tand\ttabs", b'echo back\\slash "double" \'single\' \\n \\t',
    b"echo ctl\x01\x1f\x7fend", b"echo caf\xc3\xa9 \xe2\x82\xac", b"echo crlf line\r",
    b"echo cr\rinside", b"echo", b"echo with # not a comment", b"square 12",
    b"square -5", b"square abc", b"fail 4", b"fail", b"big 20", b"big 16383",
    b"big 16384", b"big 16385", b"big 0", b"datasum",
]
with open(sys.argv[1], "wb") as f:
    f.write(b"\n".join(lines) + b"\necho last line without a newline")
EOF
for iso in threads processes; do
    for fmt in tsv jsonl raw; do
        expect_rc 1 run --isolation $iso -j 3 --format $fmt -o "$T/fmt.out" \
            --joblog "$T/fmt.log" "$T/fmt.tasks"
        $CHECK check $fmt "$T/fmt.tasks" "$DATA" "$T/fmt.out" --log "$T/fmt.log" ||
            fail "$iso $fmt (-o)"
        # the same bytes on stdout
        expect_rc 1 run --isolation $iso -j 2 --format $fmt "$T/fmt.tasks" >"$T/fmt.stdout"
        same "$T/fmt.out" "$T/fmt.stdout" "$iso $fmt: -o and stdout"
    done
done
# The TSV layout, spelled out once by hand for one task with every escape:
# seq, function, argument, status, code, output without its last newline.
printf 'echo a\tb\\c"d\r\n' >"$T/one.tasks"
run -j 1 "$T/one.tasks" >"$T/one.out"
printf '1\techo\ta\\tb\\\\c"d\tok\t0\t[a\\tb\\\\c"d]\n' >"$T/one.want"
same "$T/one.out" "$T/one.want" "one tsv record"
# ... and the jsonl record, by python's json
run -j 1 --format jsonl "$T/one.tasks" >"$T/one.json"
python3 - "$T/one.json" <<'EOF' || fail "one jsonl record"
import json, sys
got = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
want = [{"seq": 1, "function": "echo", "argument": 'a\tb\\c"d', "status": "ok", "code": 0,
         "output": '[a\tb\\c"d]\n'}]
assert got == want, got
EOF
# every task succeeds: exit 0
expect_rc 0 run -t 'echo x' -t 'square 3' >/dev/null

# ---- order ------------------------------------------------------------------

note "order"
# Sleeps of 0 to 6 ms spread so that tasks finish out of order.
$CHECK tasks shuffled 150 >"$T/order.tasks"
$CHECK expect tsv "$T/order.tasks" "$DATA" >"$T/order.want"
for iso in threads processes; do
    for j in 1 2 3 0 50%; do
        expect_rc 0 run --isolation $iso -j $j "$T/order.tasks" >"$T/order.out"
        same "$T/order.out" "$T/order.want" "$iso -j $j: records in task order"
    done
    expect_rc 0 run --isolation $iso -j 3 --unordered "$T/order.tasks" >"$T/order.out"
    $CHECK check tsv "$T/order.tasks" "$DATA" "$T/order.out" --unordered ||
        fail "$iso --unordered"
    expect_rc 0 run --isolation $iso -j 3 --unordered --format jsonl \
        --joblog "$T/order.log" "$T/order.tasks" >"$T/order.out"
    $CHECK check jsonl "$T/order.tasks" "$DATA" "$T/order.out" --unordered \
        --log "$T/order.log" || fail "$iso --unordered jsonl"
    # a window of one task: each record written before the next task starts
    expect_rc 0 run --isolation $iso -j 3 --window 1 "$T/order.tasks" >"$T/order.out"
    same "$T/order.out" "$T/order.want" "$iso --window 1"
    expect_rc 0 run --isolation $iso -j 3 --window 2 --unordered "$T/order.tasks" \
        >"$T/order.out"
    $CHECK check tsv "$T/order.tasks" "$DATA" "$T/order.out" --unordered ||
        fail "$iso --window 2 --unordered"
done

# ---- where tasks come from --------------------------------------------------

note "sources"
printf 'echo a  b\nsquare 7\nfail 3\n' >"$T/list.tasks"
$CHECK expect tsv "$T/list.tasks" "$DATA" >"$T/list.want"
expect_rc 1 run -j 2 --task 'echo a  b' -t 'square 7' --task 'fail 3' >"$T/list.out"
same "$T/list.out" "$T/list.want" "--task"
expect_rc 1 run -j 2 - <"$T/list.tasks" >"$T/list.out"
same "$T/list.out" "$T/list.want" "stdin as -"
cat "$T/list.tasks" | expect_rc 1 run -j 2 >"$T/list.out"
same "$T/list.out" "$T/list.want" "stdin from a pipe, no task file"
# --each: every line is an argument, blank and # lines too
printf 'one\n\n# not a comment\n  two  \nlast' >"$T/each.args"
for iso in threads processes; do
    expect_rc 0 run --isolation $iso --each echo "$T/each.args" >"$T/each.out"
    $CHECK check tsv "$T/each.args" "$DATA" "$T/each.out" --each echo || fail "--each file"
    cat "$T/each.args" | expect_rc 0 run --isolation $iso -e echo - >"$T/each.out"
    $CHECK check tsv "$T/each.args" "$DATA" "$T/each.out" --each echo || fail "--each stdin"
done
# --list names every function
run --list >"$T/list.fns"
for fn in echo square fail crash hang big datasum scribble whoami; do
    grep -q "^  $fn " "$T/list.fns" || fail "--list lacks $fn"
done

# ---- big outputs ---------------------------------------------------------------

note "big outputs"
# Beyond the inline area (16 KiB): heap buffers in threads, spool files in
# processes; several at once, of different sizes.
printf 'big 1000000\nbig 999999\necho small\nbig 65537\nbig 1000001\n' >"$T/big.tasks"
for iso in threads processes; do
    for fmt in raw tsv jsonl; do
        expect_rc 0 run --isolation $iso -j 3 --format $fmt "$T/big.tasks" >"$T/big.out"
        $CHECK check $fmt "$T/big.tasks" "$DATA" "$T/big.out" || fail "$iso $fmt big outputs"
    done
done
# no spool file or directory left behind (TMPDIR is $T)
for d in "$T"/crew-run*; do
    [ ! -e "$d" ] || fail "spool directory left in TMPDIR: $d"
done

# ---- failures -----------------------------------------------------------------

note "failures"
printf 'echo before\nfail 3\ncrash\nhang\nfail 0\necho after\n' >"$T/fail.tasks"
expect_rc 1 run --isolation processes -j 2 --timeout 0.5 --retries 1 --format jsonl \
    --joblog "$T/fail.log" -o "$T/fail.out" "$T/fail.tasks"
$CHECK check jsonl "$T/fail.tasks" "$DATA" "$T/fail.out" --processes --log "$T/fail.log" ||
    fail "failure records"
# retries: crash and hang ran twice, fail (which returned) once
awk -F'\t' 'NR > 2 { print $9, $7 }' "$T/fail.log" | sort >"$T/fail.retries"
printf 'crash 1\necho 0\necho 0\nfail 0\nfail 0\nhang 1\n' >"$T/fail.want"
same "$T/fail.retries" "$T/fail.want" "retries column of the job log"
# --timeout alone implies processes
printf 'hang\necho x\n' >"$T/hang.tasks"
expect_rc 1 run -j 2 --timeout 0.3 -o "$T/fail.out" "$T/hang.tasks"
$CHECK check tsv "$T/hang.tasks" "$DATA" "$T/fail.out" --processes || fail "--timeout alone"
# writing into the snapshot fails the task, not the run
expect_rc 1 run --isolation processes -t scribble -t 'echo x' >"$T/fail.out"
awk -F'\t' '$1 == 1 && $4 != "ok" { bad = 1 } $1 == 2 && $4 == "ok" { ok = 1 }
            END { exit !(bad && ok) }' "$T/fail.out" || fail "scribble: $(cat "$T/fail.out")"

note "stop on error"
{ printf 'echo 1\necho 2\nfail 3\n'; $CHECK tasks square-slow 60; } >"$T/stop.tasks"
for iso in threads processes; do
    for j in 1 2; do
        expect_rc 1 run --isolation $iso -j $j --stop-on-error --joblog "$T/stop.log" \
            "$T/stop.tasks" >"$T/stop.out" 2>"$T/stop.err"
        $CHECK check tsv "$T/stop.tasks" "$DATA" "$T/stop.out" --prefix --log "$T/stop.log" ||
            fail "$iso -j $j --stop-on-error: not a prefix of the records"
        n=$(lines "$T/stop.out")
        [ "$n" -ge 3 ] && [ "$n" -lt 20 ] || fail "$iso -j $j --stop-on-error: $n records"
        grep -q "^3	fail	" "$T/stop.out" || fail "$iso -j $j: no record of the failure"
        grep -q "stopped after a task failed: $((63 - n)) of 63 tasks not run" "$T/stop.err" ||
            fail "$iso -j $j --stop-on-error: message $(cat "$T/stop.err")"
    done
done
# from a pipe the number left is not known
cat "$T/stop.tasks" | expect_rc 1 run -j 1 --stop-on-error - >"$T/stop.out" 2>"$T/stop.err"
[ "$(lines "$T/stop.out")" = 3 ] || fail "--stop-on-error from stdin: records"
grep -q "stopped after a task failed: the tasks after it were not run" "$T/stop.err" ||
    fail "--stop-on-error from stdin: message $(cat "$T/stop.err")"

# ---- streaming ---------------------------------------------------------------

note "a million task lines"
# Bounded memory: crew keeps at most --window (1024) tasks between reading
# and writing, each a slot with a result of 16 KiB inline output, so even a
# window with every slot touched is ~17 MiB, plus the libraries, thread
# stacks and a 256 KiB line buffer: well under 64 MiB.  Keeping what a
# million tasks need (a crew_task, an argument, a result each) would take
# far more than 64 MiB (a result alone is 16 KiB), and the task file itself
# is 14 MB.  Max RSS is taken by python from getrusage of its child (a
# process pool's workers are its children too).  Sanitizers multiply memory,
# so there the count is smaller and RSS is not checked.
N=1000000
[ $SANITIZED = 0 ] || N=100000
$CHECK tasks square $N >"$T/many.tasks"
maxrss() { # maxrss OUT CMD...: run CMD with stdout to OUT; print "STATUS MAXRSS_KIB"
    python3 -c '
import resource, subprocess, sys
with open(sys.argv[1], "wb") as out, open(sys.argv[2], "rb") as inp:
    rc = subprocess.call(sys.argv[3:], stdout=out, stdin=inp)
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"
}
set -- $(maxrss "$T/many.out" "$T/many.tasks" "$CREW" run -p "$PLUG" -d "$DATA" -j 2 \
    "$T/many.tasks")
[ "$1" = 0 ] || fail "a million tasks from a file: exit $1"
$CHECK check tsv "$T/many.tasks" "$DATA" "$T/many.out" || fail "a million tasks: records"
[ $SANITIZED = 1 ] || [ "$2" -lt 65536 ] || fail "max RSS $2 KiB for $N tasks from a file"
note "max RSS $2 KiB (threads, file)"
# from a pipe, in processes: no first pass, the reader streams
set -- $(maxrss "$T/many.out" /dev/null sh -c \
    'python3 "$1" tasks square "$2" | "$3" run -p "$4" -d "$5" -j 2 --isolation processes -' \
    sh "$HERE/runcheck.py" $N "$CREW" "$PLUG" "$DATA")
[ "$1" = 0 ] || fail "a million tasks from a pipe: exit $1"
$CHECK check tsv "$T/many.tasks" "$DATA" "$T/many.out" || fail "a million tasks: records"
[ $SANITIZED = 1 ] || [ "$2" -lt 65536 ] || fail "max RSS $2 KiB for $N tasks from a pipe"
note "max RSS $2 KiB (processes, pipe)"
rm -f "$T/many.tasks" "$T/many.out"

# ---- workers added and removed while running -----------------------------------

# whoami records: seq, whoami, argument, ok, 0, "PID STATE" (STATE is the
# number init gave the worker).  The number of distinct pids (from record
# FIRST on) or states among the records of a file:
pids() { awk -F'\t' -v from="${2:-1}" 'NR >= from { split($6, w, " "); print w[1] }' "$1" |
    sort -u | wc -l | tr -d ' '; }
states() { awk -F'\t' '{ split($6, w, " "); print w[2] }' "$1" | sort -u | wc -l | tr -d ' '; }

note "SIGUSR1"
for i in $(seq 300); do echo "whoami 20000"; done >"$T/who.tasks"
for iso in processes threads; do
    rm -f "$T/who.log"
    (run_bg --isolation $iso -j 1 --joblog "$T/who.log" "$T/who.tasks" >"$T/who.out") &
    pid=$!
    wait_for 600 log_has "$T/who.log" 20
    kill -USR1 $pid
    expect_rc 0 wait $pid
    [ "$(lines "$T/who.out")" = 300 ] || fail "$iso SIGUSR1: records missing"
    if [ $iso = processes ]; then
        [ "$(pids "$T/who.out")" = 2 ] || fail "processes: SIGUSR1 did not add a worker"
    else
        [ "$(states "$T/who.out")" = 2 ] || fail "threads: SIGUSR1 did not add a worker"
    fi
done

note "-j FILE"
echo 1 >"$T/jobs"
rm -f "$T/who.log"
(run_bg --isolation processes -j "$T/jobs" --joblog "$T/who.log" "$T/who.tasks" >"$T/who.out") &
pid=$!
wait_for 600 log_has "$T/who.log" 20
[ "$(pids "$T/who.out")" = 1 ] || fail "-j FILE holding 1: several workers"
echo 3 >"$T/jobs"
expect_rc 0 wait $pid
n=$(pids "$T/who.out")
[ "$n" -ge 2 ] && [ "$n" -le 3 ] || fail "-j FILE changed to 3: $n workers ran tasks"

note "SIGUSR2"
# Three workers, then two fewer.  A retired worker ends normally and runs
# fini, which logs its pid and the time (TESTPLUG_FINI_LOG): no task of a
# retired worker may start after its fini, and after the second fini every
# task runs in the one worker left.  (`stamp` records its pid and start.)
for i in $(seq 400); do echo "stamp 20000"; done >"$T/who.tasks"
rm -f "$T/who.log" "$T/fini"
(TESTPLUG_FINI_LOG=$T/fini run_bg --isolation processes -j 3 --joblog "$T/who.log" \
    "$T/who.tasks" >"$T/who.out") &
pid=$!
wait_for 600 log_has "$T/who.log" 20
# one signal at a time: two pending SIGUSR2 would be one
fini_has() { [ -f "$T/fini" ] && [ "$(lines "$T/fini")" -ge "$1" ]; }
kill -USR2 $pid
wait_for 600 fini_has 1
kill -USR2 $pid
wait_for 600 fini_has 2
expect_rc 0 wait $pid
[ "$(pids "$T/who.out")" = 3 ] || fail "SIGUSR2: not three workers at first"
# the fini log: the two retired workers first, then the last one at the end
python3 - "$T/fini" "$T/who.out" <<'PY' || fail "SIGUSR2: a retired worker ran tasks"
import sys
fini = [l.split() for l in open(sys.argv[1])]
retired = {int(f[1]): float(f[3]) for f in fini[:2]}
last = float(fini[1][3])
runs = [(int(p), float(t)) for p, t in
        (r.rstrip("\n").split("\t")[5].split() for r in open(sys.argv[2]))]
late = [p for p, t in runs if p in retired and t > retired[p]]
if late:
    sys.exit(f"tasks started after their worker's fini: {late}")
after = {p for p, t in runs if t > last}
if len(after) != 1 or after & set(retired):
    sys.exit(f"after the second fini, tasks ran in {sorted(after)}")
PY
# one fini per worker, in the worker itself
awk '{ print $2 }' "$T/fini" | sort >"$T/fini.pids"
awk -F'\t' '{ split($6, w, " "); print w[1] }' "$T/who.out" | sort -u >"$T/who.pids"
same "$T/fini.pids" "$T/who.pids" "SIGUSR2: fini once in each worker process"

# ---- plugin init and fini --------------------------------------------------------

note "init and fini"
for i in $(seq 60); do echo "whoami 2000"; done >"$T/who.tasks"
rm -f "$T/fini"
TESTPLUG_FINI_LOG=$T/fini expect_rc 0 run --isolation threads -j 3 "$T/who.tasks" >"$T/who.out"
# threads: one process; one init per worker thread that ran a task, each
# with its own state, and one fini for each
[ "$(pids "$T/who.out")" = 1 ] || fail "threads: tasks ran in several processes"
awk '{ print $2, $3 }' "$T/fini" | sort >"$T/fini.states"
awk -F'\t' '{ print $6 }' "$T/who.out" | sort -u >"$T/who.states"
same "$T/fini.states" "$T/who.states" "threads: one fini per state init made"
rm -f "$T/fini"
TESTPLUG_FINI_LOG=$T/fini expect_rc 0 run --isolation processes -j 3 "$T/who.tasks" \
    >"$T/who.out"
# processes: init once per worker process (its first state is 1), fini there
awk '{ print $2, $3 }' "$T/fini" | sort >"$T/fini.states"
awk -F'\t' '{ print $6 }' "$T/who.out" | sort -u >"$T/who.states"
same "$T/fini.states" "$T/who.states" "processes: one fini per worker process"
awk -F'\t' '{ split($6, w, " "); if (w[2] != 1) exit 1 }' "$T/who.out" ||
    fail "processes: a worker ran init twice"
# a failing init fails every task of its worker, with its code; no fini
printf 'echo 1\necho 2\nsquare 3\necho 4\n' >"$T/init.tasks"
for iso in threads processes; do
    rm -f "$T/fini"
    TESTPLUG_FAIL_INIT=5 TESTPLUG_FINI_LOG=$T/fini expect_rc 1 run --isolation $iso -j 2 \
        --joblog "$T/init.log" "$T/init.tasks" >"$T/init.out"
    [ "$(lines "$T/init.out")" = 4 ] || fail "$iso failing init: records missing"
    awk -F'\t' '$4 != "error" || $5 != 5 || $6 !~ /init/ { exit 1 }' "$T/init.out" ||
        fail "$iso failing init: $(cat "$T/init.out")"
    awk -F'\t' 'NR > 2 && ($2 != "error" || $3 != 5) { exit 1 }' "$T/init.log" ||
        fail "$iso failing init: job log"
    [ ! -e "$T/fini" ] || fail "$iso: fini ran after a failed init"
done

echo "PASS"
