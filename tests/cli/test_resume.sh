# Description: crew run --resume: a run killed (SIGKILL) or interrupted
# (SIGINT) part way, then resumed, gives the same bytes as a run that was
# never stopped; a second SIGINT kills running tasks; --resume-failed runs
# the failed tasks again and only those.
set -eu
. "$(dirname "$0")/lib.sh"

# count_status LOG STATUS: task lines of the job log with that status.
count_status() {
    awk -F'\t' -v s="$2" 'NR > 2 && $2 == s { n++ } END { print n + 0 }' "$1"
}

# 2000 tasks of 2 ms: long enough to be stopped part way after the log
# shows 100 of them, whatever the machine's speed.
$CHECK tasks square-slow 2000 >"$T/tasks"
$CHECK expect tsv "$T/tasks" "$DATA" >"$T/want"

for iso in threads processes; do
    note "$iso: uninterrupted"
    expect_rc 0 run -j 2 --isolation $iso -o "$T/ref" --joblog "$T/ref.log" "$T/tasks"
    same "$T/ref" "$T/want" "$iso: a run never stopped"
    $CHECK check tsv "$T/tasks" "$DATA" "$T/ref" --log "$T/ref.log" || fail "$iso: its log"

    note "$iso: SIGKILL, then --resume"
    rm -f "$T/out" "$T/log"
    (run_bg -j 2 --isolation $iso --joblog "$T/log" -o "$T/out" "$T/tasks") &
    pid=$!
    wait_for 600 log_has "$T/log" 100
    kill -KILL $pid
    expect_rc 137 wait $pid
    n=$(($(lines "$T/log") - 2))
    [ $n -lt 2000 ] || fail "$iso: the run ended before SIGKILL"
    # what was written is whole records in task order
    $CHECK check tsv "$T/tasks" "$DATA" "$T/out" --prefix || fail "$iso: output after SIGKILL"
    expect_rc 0 run -j 3 --isolation $iso --joblog "$T/log" -o "$T/out" --resume "$T/tasks"
    same "$T/out" "$T/want" "$iso: killed and resumed"
    # the log lists every task once, and ends where the output ends
    $CHECK check tsv "$T/tasks" "$DATA" "$T/out" --log "$T/log" || fail "$iso: the resumed log"
    # resuming a finished job runs nothing and changes nothing
    cp "$T/out" "$T/out.done"
    cp "$T/log" "$T/log.done"
    expect_rc 0 run -j 2 --isolation $iso --joblog "$T/log" -o "$T/out" --resume "$T/tasks"
    same "$T/out" "$T/out.done" "$iso: resuming a finished job (output)"
    same "$T/log" "$T/log.done" "$iso: resuming a finished job (log)"

    note "$iso: SIGKILL with stdout appended to a file"
    printf 'a line that was there before\n' >"$T/out"
    rm -f "$T/log"
    (run_bg -j 2 --isolation $iso --joblog "$T/log" "$T/tasks" >>"$T/out") &
    pid=$!
    wait_for 600 log_has "$T/log" 100
    kill -KILL $pid
    expect_rc 137 wait $pid
    [ $(($(lines "$T/log") - 2)) -lt 2000 ] || fail "$iso: the run ended before SIGKILL"
    run -j 2 --isolation $iso --joblog "$T/log" --resume "$T/tasks" >>"$T/out" ||
        fail "$iso: resume onto stdout: exit $?"
    { printf 'a line that was there before\n'; cat "$T/want"; } >"$T/want.appended"
    same "$T/out" "$T/want.appended" "$iso: killed and resumed onto stdout (>>)"

    note "$iso: SIGINT, then --resume"
    rm -f "$T/out" "$T/log"
    (run_bg -j 2 --isolation $iso --joblog "$T/log" -o "$T/out" "$T/tasks") 2>"$T/err" &
    pid=$!
    wait_for 600 log_has "$T/log" 100
    kill -INT $pid
    expect_rc 130 wait $pid
    grep -q "interrupted" "$T/err" || fail "$iso: no message after SIGINT"
    # an interrupted run's output and log agree exactly
    $CHECK check tsv "$T/tasks" "$DATA" "$T/out" --prefix --log "$T/log" ||
        fail "$iso: output and log after SIGINT"
    [ "$(lines "$T/out")" -lt 2000 ] || fail "$iso: the run ended before SIGINT"
    expect_rc 0 run -j 2 --isolation $iso --joblog "$T/log" -o "$T/out" --resume "$T/tasks"
    same "$T/out" "$T/want" "$iso: interrupted and resumed"
    $CHECK check tsv "$T/tasks" "$DATA" "$T/out" --log "$T/log" || fail "$iso: the resumed log"

    note "$iso: a second SIGINT kills the running tasks"
    # four whoami (their records come at once, --unordered) then four
    # tasks that never end, on four workers
    printf 'whoami 0\nwhoami 0\nwhoami 0\nwhoami 0\nhang\nhang\nhang\nhang\n' >"$T/hang.tasks"
    rm -f "$T/out"
    (run_bg -j 4 --isolation $iso --unordered -o "$T/out" "$T/hang.tasks") 2>"$T/err" &
    pid=$!
    has_records() { [ -f "$T/out" ] && [ "$(lines "$T/out")" -ge 4 ]; }
    wait_for 600 has_records
    kill -INT $pid
    said_interrupted() { grep -q "interrupted" "$T/err"; }
    wait_for 600 said_interrupted
    ! gone $pid || fail "$iso: the first SIGINT did not wait for the running tasks"
    kill -INT $pid
    wait_for 600 gone $pid
    expect_rc 130 wait $pid
    if [ $iso = processes ]; then
        # the workers that ran the hanging tasks are gone too
        for w in $(awk -F'\t' '{ split($6, f, " "); print f[1] }' "$T/out" | sort -u); do
            wait_for 600 gone "$w"
        done
    fi
done

note "a kill between a record and its log line, and within a log line"
# Made by hand from a finished run, as a kill may leave them: the output
# holds record 101 (and half of 102) that the log does not claim, the log
# half of the line for 101.  Resume must cut both back and finish.
expect_rc 0 run -j 2 --joblog "$T/log" -o "$T/out" "$T/tasks"
python3 - "$T/out" "$T/log" <<'EOF2'
import sys
out_path, log_path = sys.argv[1], sys.argv[2]
log = open(log_path, "rb").read().split(b"\n")
keep = log[:102]                     # identity, header, tasks 1..100
end = int(keep[-1].split(b"\t")[7])  # where record 100 ends
out = open(out_path, "rb").read()
rec101_end = int(log[102].split(b"\t")[7])
rec102_end = int(log[103].split(b"\t")[7])
half102 = out[rec101_end:(rec101_end + rec102_end) // 2]
open(out_path, "wb").write(out[:rec101_end] + half102)
open(log_path, "wb").write(b"\n".join(keep) + b"\n" + log[102][:len(log[102]) // 2])
EOF2
expect_rc 0 run -j 2 --joblog "$T/log" -o "$T/out" --resume "$T/tasks"
same "$T/out" "$T/want" "resumed after a record without its log line"
$CHECK check tsv "$T/tasks" "$DATA" "$T/out" --log "$T/log" || fail "that resumed log"

note "--unordered: SIGKILL, then --resume"
rm -f "$T/out" "$T/log"
(run_bg -j 2 --unordered --joblog "$T/log" -o "$T/out" "$T/tasks") &
pid=$!
wait_for 600 log_has "$T/log" 100
kill -KILL $pid
expect_rc 137 wait $pid
expect_rc 0 run -j 2 --unordered --joblog "$T/log" -o "$T/out" --resume "$T/tasks"
$CHECK check tsv "$T/tasks" "$DATA" "$T/out" --unordered --log "$T/log" ||
    fail "--unordered: killed and resumed"

note "--resume-failed"
$CHECK tasks mixed 200 >"$T/mixed.tasks"
$CHECK expect tsv "$T/mixed.tasks" "$DATA" >"$T/mixed.want"
nfail=$(grep -c '^fail ' "$T/mixed.tasks")
[ "$nfail" -gt 0 ] || fail "no failing tasks in the test"
nok=$((200 - nfail))
rm -f "$T/out" "$T/log"
expect_rc 1 run -j 2 --joblog "$T/log" -o "$T/out" "$T/mixed.tasks"
same "$T/out" "$T/mixed.want" "mixed tasks"
[ "$(count_status "$T/log" ok)" = $nok ] && [ "$(count_status "$T/log" error)" = "$nfail" ] ||
    fail "mixed tasks: statuses in the log"
# --resume leaves failed tasks failed: nothing runs, exit 1
expect_rc 1 run -j 2 --joblog "$T/log" -o "$T/out" --resume "$T/mixed.tasks"
same "$T/out" "$T/mixed.want" "--resume after failures"
[ "$(lines "$T/log")" = 202 ] || fail "--resume ran tasks again"
# --resume-failed runs the failed ones again, only them, in order
expect_rc 1 run -j 2 --joblog "$T/log" -o "$T/out" --resume-failed "$T/mixed.tasks"
{ cat "$T/mixed.want"; awk -F'\t' '$4 == "error"' "$T/mixed.want"; } >"$T/mixed.again"
same "$T/out" "$T/mixed.again" "--resume-failed: output"
[ "$(count_status "$T/log" ok)" = $nok ] && [ "$(count_status "$T/log" error)" = $((2 * nfail)) ] ||
    fail "--resume-failed: statuses in the log"
awk -F'\t' 'NR > 2 && NR <= 202 && $2 == "error" { print $1 }' "$T/log" | sort -n >"$T/failed1"
awk -F'\t' 'NR > 202 { print $1 }' "$T/log" | sort -n >"$T/failed2"
same "$T/failed1" "$T/failed2" "--resume-failed ran exactly the failed tasks"
# tasks that failed the first time and succeed now
for iso in threads processes; do
    rm -f "$T/out" "$T/log"
    TESTPLUG_FAIL_INIT=7 expect_rc 1 run -j 2 --isolation $iso --joblog "$T/log" -o "$T/out" \
        "$T/tasks"
    [ "$(count_status "$T/log" error)" = 2000 ] || fail "$iso: a failing init"
    expect_rc 0 run -j 2 --isolation $iso --joblog "$T/log" -o "$T/out" --resume-failed \
        "$T/tasks"
    [ "$(count_status "$T/log" ok)" = 2000 ] || fail "$iso: --resume-failed: statuses"
    tail -n 2000 "$T/out" >"$T/out.tail"
    same "$T/out.tail" "$T/want" "$iso: --resume-failed after a failing init"
    [ "$(lines "$T/out")" = 4000 ] || fail "$iso: --resume-failed: records"
done

echo "PASS"
