# Description: crew run --mpi end to end, under mpirun with 1, 2 and 4
# ranks, thread and process pools: the records are the same bytes as a
# single-node run's; --stop-on-error, --timeout and --retries keep their
# promises; a run that loses a rank resumes (on one node or under MPI), and
# a single-node run resumes under MPI; ranks that cannot read the data get
# the root's bytes; bad input gives one message; dead runs leave nothing.
#
# Run as `sh test_mpi.sh CREW TESTPLUG_SO BUILD_DIR MKSNAP MPIRUN_SH`, where
# MPIRUN_SH is tests/mpi/mpirun.sh, the wrapper every MPI test runs through.
set -eu
. "$(dirname "$0")/lib.sh"
[ $# -ge 5 ] || fail "usage: sh $0 CREW TESTPLUG_SO BUILD_DIR MKSNAP MPIRUN_SH"
MPIRUN=$5

# crew's own messages on stderr (mpirun adds its banners around them).
crew_lines() {
    grep '^crew' "$1" || true
}

# mpi NP ARGS...: crew run --mpi with the test plugin over $DATA, on NP
# ranks; stderr (crew's and mpirun's) in $T/mpi.err.
mpi() {
    np=$1
    shift
    sh "$MPIRUN" "$np" "$CREW" run --mpi --plugin "$PLUG" --data "$DATA" "$@" 2>"$T/mpi.err"
}

# expect_rc_err WANT ERR CMD...: as expect_rc, with CMD's stderr in ERR.
expect_rc_err() {
    want=$1
    err=$2
    shift 2
    set +e
    "$@" 2>"$err"
    got=$?
    set -e
    [ "$got" = "$want" ] || fail "exit status $got, want $want: $*: $(head -n 3 "$err")"
}

# mpi_rc WANT NP ARGS...: mpi, and fail unless it exits WANT.  (Not
# expect_rc with 2>FILE, which would hide its own message in FILE.)
mpi_rc() {
    want=$1
    shift
    set +e
    mpi "$@"
    got=$?
    set -e
    [ "$got" = "$want" ] ||
        fail "exit status $got, want $want: mpi $*: $(crew_lines "$T/mpi.err" | head -n 3)"
}

# mpi_traced NP TAG ARGS...: as mpi, and each rank first appends "RANK PID
# JOBID" to $T/ranks.TAG (then execs crew, keeping its pid), so that what a
# killed job leaves behind can be named exactly: its ranks' shared-memory
# records (crew-mpi.PID) and Open MPI's segments (vader_segment.*.JOBID.*,
# the job id in hex).
mpi_traced() {
    np=$1
    tag=$2
    shift 2
    sh "$MPIRUN" "$np" sh -c 'echo "$OMPI_COMM_WORLD_RANK $$ $OMPI_MCA_ess_base_jobid" >>"$0"
                              exec "$@"' "$T/ranks.$tag" \
        "$CREW" run --mpi --plugin "$PLUG" --data "$DATA" "$@"
}

# ---- the records: the same bytes as without --mpi ---------------------------

# A mixed task file: successes, failures, invalid returns, outputs from a
# few bytes to 2 MB (process pools spool those beyond 16 KiB, and they travel
# between ranks whole), sleeps so that tasks finish out of order, and
# datasum, which reads the whole snapshot.
python3 - "$T/mix.tasks" <<'EOF'
import sys
sizes = [10000, 16383, 16385, 70000, 2000000, 300000, 16384, 1000000, 50001, 123457]
lines, n_big = [], 0
for i in range(1, 2501):
    if i % 53 == 7:
        lines.append("fail %d" % (i % 5 + 2))
    elif i % 211 == 100:
        lines.append("big %d" % sizes[n_big % len(sizes)])
        n_big += 1
    elif i % 61 == 30:
        lines.append("negative n%d" % i)
    elif i % 97 == 50:
        lines.append("datasum")
    elif i % 3 == 0:
        lines.append("square %d %d" % (i, (i * 7919) % 7 * 100))
    else:
        lines.append("echo e%d" % i)
with open(sys.argv[1], "w") as f:
    f.write("# a mixed run\n" + "\n".join(lines) + "\n")
EOF
grep -q '^fail ' "$T/mix.tasks" && [ "$(grep -c '^big ' "$T/mix.tasks")" -ge 10 ] ||
    fail "the mixed task file lacks failures or big outputs"
# The same without the failures (a run that exits 1 costs mpirun two
# seconds more); a few tasks for --task; --each's arguments.
grep -v '^fail \|^negative ' "$T/mix.tasks" >"$T/mixok.tasks"
printf 'echo a  b\nsquare 7 300\nbig 20000\ndatasum\necho last\n' >"$T/ok.tasks"
printf 'one\n\n# not a comment\n  two  \nlast' >"$T/each.args"

note "single-node references"
# Checked against runcheck.py's independent model; every MPI run below must
# give these very bytes.
for fmt in tsv jsonl raw; do
    expect_rc 1 run -j 2 --format $fmt "$T/mix.tasks" >"$T/ref.$fmt"
    $CHECK check $fmt "$T/mix.tasks" "$DATA" "$T/ref.$fmt" || fail "single-node $fmt"
done
expect_rc 0 run -j 2 "$T/mixok.tasks" >"$T/mixok.ref"
$CHECK check tsv "$T/mixok.tasks" "$DATA" "$T/mixok.ref" || fail "single-node mixok.tasks"
expect_rc 0 run -j 2 "$T/ok.tasks" >"$T/ok.ref"
$CHECK check tsv "$T/ok.tasks" "$DATA" "$T/ok.ref" || fail "single-node ok.tasks"
expect_rc 0 run -j 2 --each echo "$T/each.args" >"$T/each.ref"
$CHECK check tsv "$T/each.args" "$DATA" "$T/each.ref" --each echo || fail "single-node --each"

for np in 1 2 4; do
    for iso in threads processes; do
        what="-np $np $iso"
        note "$what: formats and task sources"
        # tsv from a file into -o, with a job log
        rm -f "$T/mpi.log"
        mpi_rc 1 $np --isolation $iso -j 2 -o "$T/mpi.out" --joblog "$T/mpi.log" \
            "$T/mix.tasks"
        same "$T/mpi.out" "$T/ref.tsv" "$what tsv"
        $CHECK check tsv "$T/mix.tasks" "$DATA" "$T/mpi.out" --log "$T/mpi.log" ||
            fail "$what: the job log"
        # jsonl from stdin as `-`, on stdout
        mpi_rc 1 $np --isolation $iso -j 2 --format jsonl - <"$T/mix.tasks" \
            >"$T/mpi.out"
        same "$T/mpi.out" "$T/ref.jsonl" "$what jsonl from stdin"
        # raw from a pipe, no task file named
        cat "$T/mix.tasks" | mpi_rc 1 $np --isolation $iso -j 2 --format raw \
            >"$T/mpi.out"
        same "$T/mpi.out" "$T/ref.raw" "$what raw from a pipe"
        # as tasks finish: the same records, in some order
        mpi_rc 0 $np --isolation $iso -j 2 --unordered "$T/mixok.tasks" >"$T/mpi.out"
        sort "$T/mpi.out" >"$T/mpi.sorted"
        sort "$T/mixok.ref" >"$T/ref.sorted"
        same "$T/mpi.sorted" "$T/ref.sorted" "$what --unordered (sorted)"
        # --task, --each
        mpi_rc 0 $np --isolation $iso -j 2 -t 'echo a  b' --task 'square 7 300' \
            -t 'big 20000' -t datasum -t 'echo last' >"$T/mpi.out"
        same "$T/mpi.out" "$T/ok.ref" "$what --task"
        mpi_rc 0 $np --isolation $iso -j 2 --each echo "$T/each.args" >"$T/mpi.out"
        same "$T/mpi.out" "$T/each.ref" "$what --each"
    done
done
# No rank said anything of its own: a run with failed tasks says nothing.
[ -z "$(crew_lines "$T/mpi.err")" ] || fail "messages from a run: $(cat "$T/mpi.err")"

# ---- --stop-on-error -----------------------------------------------------------

note "--stop-on-error"
# What crew(1) promises without MPI (and test_run.sh checks): the output
# holds the failed task's record and every one before it, perhaps a few
# after it, and nothing else -- a prefix of the full run's records; exit 1;
# a message with the number of tasks not run.  With --window 1 no task
# starts before the one before it is written, so exactly three records.
{ printf 'echo 1\necho 2\nfail 3\n'; for i in $(seq 200); do echo "square $i 20000"; done; } \
    >"$T/stop.tasks"
# Every isolation and window at -np 2; some at 1 and 4.
for np_iso_window in "1 threads 1" "1 processes 1024" "2 threads 1" "2 threads 1024" \
    "2 processes 1" "2 processes 1024" "4 threads 1" "4 processes 1024"; do
    set -- $np_iso_window
    np=$1
    iso=$2
    window=$3
    what="-np $np $iso --window $window"
    rm -f "$T/stop.log"
    mpi_rc 1 $np --isolation $iso -j 2 --window $window --stop-on-error \
        --joblog "$T/stop.log" "$T/stop.tasks" >"$T/stop.out"
    $CHECK check tsv "$T/stop.tasks" "$DATA" "$T/stop.out" --prefix --log "$T/stop.log" ||
        fail "$what --stop-on-error: not a prefix of the records"
    n=$(lines "$T/stop.out")
    grep -q "^3	fail	" "$T/stop.out" || fail "$what: no record of the failure"
    [ "$n" -lt 203 ] || fail "$what: nothing stopped"
    [ $window != 1 ] || [ "$n" = 3 ] || fail "$what: $n records"
    crew_lines "$T/mpi.err" >"$T/stop.msg"
    echo "crew run: stopped after a task failed: $((203 - n)) of 203 tasks not run" \
        >"$T/stop.want"
    same "$T/stop.msg" "$T/stop.want" "$what: the message"
done
# from a pipe the number left is not known
cat "$T/stop.tasks" | mpi_rc 1 4 -j 2 --window 1 --stop-on-error \
    >"$T/stop.out"
[ "$(lines "$T/stop.out")" = 3 ] || fail "--stop-on-error from a pipe: records"
crew_lines "$T/mpi.err" >"$T/stop.msg"
echo "crew run: stopped after a task failed: the tasks after it were not run" >"$T/stop.want"
same "$T/stop.msg" "$T/stop.want" "--stop-on-error from a pipe: the message"

# ---- --timeout and --retries ------------------------------------------------------

note "--timeout and --retries"
{
    printf 'echo before\nfail 3\ncrash\nhang\nfail 0\n'
    for i in $(seq 40); do echo "square $i 1000"; done
    printf 'echo after\n'
} >"$T/fail.tasks"
for np in 1 2 4; do
    rm -f "$T/fail.log"
    mpi_rc 1 $np --isolation processes -j 2 --timeout 0.5 --retries 1 --format jsonl \
        --joblog "$T/fail.log" -o "$T/fail.out" "$T/fail.tasks"
    $CHECK check jsonl "$T/fail.tasks" "$DATA" "$T/fail.out" --processes --log "$T/fail.log" ||
        fail "-np $np: failure records"
    # crash and hang ran twice; the others once
    awk -F'\t' 'NR > 2 && $7 != 0 { print $9, $7 }' "$T/fail.log" | sort >"$T/fail.retries"
    printf 'crash 1\nhang 1\n' >"$T/fail.want"
    same "$T/fail.retries" "$T/fail.want" "-np $np: retries column of the job log"
done

# ---- a rank dies; resume -------------------------------------------------------------

# 300 tasks of 2 ms, so that records are written first, then 1200 more with
# die_on_rank every tenth: the first one that runs on the victim rank kills
# it (SIGKILL, with a thread pool the whole rank); anywhere else it writes
# the same "alive" record as without MPI.
die_tasks() { # die_tasks RANK [MARKER]
    python3 - "$@" <<'EOF'
import sys
die = "die_on_rank " + " ".join(sys.argv[1:])
for i in range(1, 1501):
    print(die if i > 300 and i % 10 == 0 else "square %d 2000" % i)
EOF
}

# check_killed TAG VICTIM: after a run that lost rank VICTIM (stderr in
# $T/TAG.err, log $T/TAG.log, output $T/TAG.out, tasks $T/TAG.tasks).
check_killed() {
    tag=$1
    # mpirun names the rank and the signal
    grep -q "process rank $2 .*exited on signal 9" "$T/$tag.err" ||
        fail "$tag: mpirun did not name rank $2: $(cat "$T/$tag.err")"
    # The root was not killed outright: mpirun sends the ranks left SIGTERM
    # and waits (a second by default) before SIGKILL, and the root's signal
    # thread answers SIGTERM at once: it writes what it holds and says how
    # to go on.
    crew_lines "$T/$tag.err" >"$T/$tag.msg"
    echo "crew run: stopped by SIGTERM (mpirun ends every rank when one dies or it is" \
        "interrupted): job log $T/$tag.log holds the tasks whose records were written; run" \
        "again with --resume to finish the rest" >"$T/$tag.msgwant"
    same "$T/$tag.msg" "$T/$tag.msgwant" "$tag: the root's message"
    # Every log line whole, and the output ends where the log says.  (The
    # root's writer is idle by then: records wait in order for the dead
    # rank's, so the signal thread writes output and log out together.)
    $CHECK check tsv "$T/$tag.tasks" "$DATA" "$T/$tag.out" --prefix --log "$T/$tag.log" ||
        fail "$tag: output and job log after the rank died"
    n=$(lines "$T/$tag.out")
    [ "$n" -ge 300 ] && [ "$n" -lt 1500 ] || fail "$tag: $n records before the rank died"
}

# The vader segments and crew-mpi records of the jobs traced as TAGS...:
# the files that must be gone.
leftovers() {
    for tag in "$@"; do
        while read -r rank pid jobid; do
            ls -d /dev/shm/crew-mpi."$pid" "/dev/shm/vader_segment".*".$(printf %x "$jobid").$rank" \
                2>/dev/null || true
        done <"$T/ranks.$tag"
    done
}

note "a rank dies; resumed on one node"
die_tasks 1 >"$T/a.tasks"
$CHECK expect tsv "$T/a.tasks" "$DATA" >"$T/a.want"
set +e
mpi_traced 2 a --isolation threads -j 2 --joblog "$T/a.log" -o "$T/a.out" "$T/a.tasks" \
    2>"$T/a.err"
rc=$?
set -e
[ $rc != 0 ] && [ $rc != 1 ] || fail "a: mpirun exited $rc after a rank was killed"
check_killed a 1
# What the dead job left (rank 1's record and segment at least) is swept
# by the next MPI run -- perhaps another test's, running beside this one.
[ -n "$(leftovers a)" ] || note "a: the killed job's shared-memory files are gone already"
expect_rc 0 run -j 2 --joblog "$T/a.log" -o "$T/a.out" --resume "$T/a.tasks"
same "$T/a.out" "$T/a.want" "a: killed under MPI, resumed on one node"
$CHECK check tsv "$T/a.tasks" "$DATA" "$T/a.out" --log "$T/a.log" || fail "a: the resumed log"

note "a rank dies; resumed under MPI"
# Rank 3 of 4 dies, once: the marker lets the resumed job run through.
die_tasks 3 "$T/b.marker" >"$T/b.tasks"
$CHECK expect tsv "$T/b.tasks" "$DATA" >"$T/b.want"
set +e
mpi_traced 4 b --isolation threads -j 1 --joblog "$T/b.log" -o "$T/b.out" "$T/b.tasks" \
    2>"$T/b.err"
rc=$?
set -e
[ $rc != 0 ] && [ $rc != 1 ] || fail "b: mpirun exited $rc after a rank was killed"
[ -e "$T/b.marker" ] || fail "b: die_on_rank did not kill rank 3"
check_killed b 3
mpi_traced 2 b2 --isolation threads -j 2 --joblog "$T/b.log" -o "$T/b.out" --resume \
    "$T/b.tasks" || fail "b: the resume under MPI failed"
same "$T/b.out" "$T/b.want" "b: killed under MPI, resumed under MPI"
$CHECK check tsv "$T/b.tasks" "$DATA" "$T/b.out" --log "$T/b.log" || fail "b: the resumed log"
# That run swept what the dead jobs left in /dev/shm.
left=$(leftovers a b)
[ -z "$left" ] || fail "shared-memory files of dead jobs left: $left"

note "a single-node run SIGKILLed; resumed under MPI"
$CHECK tasks square-slow 2000 >"$T/c.tasks"
$CHECK expect tsv "$T/c.tasks" "$DATA" >"$T/c.want"
(run_bg -j 2 --isolation processes --joblog "$T/c.log" -o "$T/c.out" "$T/c.tasks") &
pid=$!
wait_for 600 log_has "$T/c.log" 100
kill -KILL $pid
expect_rc 137 wait $pid
[ $(($(lines "$T/c.log") - 2)) -lt 2000 ] || fail "c: the run ended before SIGKILL"
# the dead run's spool directory, as SIGKILL leaves it, once its workers
# (which share its lock) are gone too
ls -d "$T"/crew-run.* >/dev/null 2>&1 || fail "c: no spool directory to sweep"
for d in "$T"/crew-run.*; do
    ! command -v flock >/dev/null || wait_for 600 flock -n "$d" true
done
mpi 2 --isolation processes -j 2 --joblog "$T/c.log" -o "$T/c.out" --resume "$T/c.tasks" ||
    fail "c: the resume under MPI failed"
same "$T/c.out" "$T/c.want" "c: killed on one node, resumed under MPI"
$CHECK check tsv "$T/c.tasks" "$DATA" "$T/c.out" --log "$T/c.log" || fail "c: the resumed log"
# every rank swept the dead run's spool directory and removed its own
for d in "$T"/crew-run*; do
    [ ! -e "$d" ] || fail "spool directory left in TMPDIR: $d"
done

# ---- data only the root can read -------------------------------------------------------

note "data only rank 0 can read"
if ! unshare -m true 2>/dev/null; then
    # Needs CAP_SYS_ADMIN for a mount namespace (root, or a user namespace).
    echo "SKIPPED: data only rank 0 can read: unshare -m is not permitted here" >&2
else
    # Ranks other than 0 get a tmpfs over the data's directory: the file is
    # not there; with a different snapshot at the same path (-np 4 below)
    # their copy is not the root's.  Either way they must run on the root's
    # bytes.  whoami tasks show which processes ran tasks.
    mkdir "$T/only0"
    cat >"$T/hide.sh" <<'EOF2'
# hide.sh DIR OTHER HIDDEN CMD...: rank 0 runs CMD; the others run it in a
# mount namespace of their own with a tmpfs over DIR, holding OTHER as
# data.crew when OTHER is not empty; each appends its pid to HIDDEN.
dir=$1 other=$2 hidden=$3
shift 3
[ "$OMPI_COMM_WORLD_RANK" != 0 ] || exec "$@"
exec unshare -m sh -c '
    dir=$1 other=$2 hidden=$3
    shift 3
    mount -t tmpfs none "$dir" || exit 99
    [ ! -e "$dir/data.crew" ] || exit 98
    [ -z "$other" ] || cp "$other" "$dir/data.crew" || exit 97
    echo $$ >>"$hidden"
    exec "$@"' sh "$dir" "$other" "$hidden" "$@"
EOF2
    cp "$DATA" "$T/only0/data.crew"
    "$MKSNAP" "$T/other.crew" 5000 || fail "mksnap"
    python3 - "$T/only0.tasks" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(1, 601):
        f.write(("datasum\n", "whoami 3000\n", "big 70000\n", "echo %d\n" % i)[i % 4])
EOF
    for np_iso in "2 threads" "4 processes"; do
        set -- $np_iso
        np=$1
        iso=$2
        expect_rc 0 run -j 1 --isolation $iso "$T/only0.tasks" >"$T/only0.ref"
        rm -f "$T/only0.hidden"
        other=
        [ $np != 4 ] || other=$T/other.crew
        sh "$MPIRUN" $np sh "$T/hide.sh" "$T/only0" "$other" "$T/only0.hidden" \
            "$CREW" run --mpi --plugin "$PLUG" --data "$T/only0/data.crew" -j 1 --isolation $iso \
            "$T/only0.tasks" >"$T/only0.out" || fail "-np $np $iso: data only on rank 0: exit $?"
        [ "$(lines "$T/only0.hidden")" = $((np - 1)) ] ||
            fail "-np $np: not every other rank ran without the data"
        # every record but whoami's the same bytes; datasum's prove each
        # rank summed the root's snapshot
        awk -F'\t' '$2 != "whoami"' "$T/only0.ref" >"$T/only0.want"
        awk -F'\t' '$2 != "whoami"' "$T/only0.out" >"$T/only0.got"
        same "$T/only0.got" "$T/only0.want" "-np $np $iso: data only on rank 0"
        [ "$(lines "$T/only0.out")" = 600 ] || fail "-np $np $iso: records missing"
        # ... and tasks ran on other ranks than the root: more than one
        # process (threads: the ranks) or worker (processes, -j 1 a rank)
        npids=$(awk -F'\t' '$2 == "whoami" { split($6, w, " "); print w[1] }' \
            "$T/only0.out" | sort -u | wc -l | tr -d ' ')
        [ "$npids" -gt 1 ] || fail "-np $np $iso: every task ran in one process"
    done
    # A plugin only the root has (it must be at the same path on every
    # node): the rank that lacks it says so, naming itself; exit 2.
    mkdir "$T/plugdir"
    cp "$PLUG" "$T/plugdir/testplug.so"
    expect_rc_err 2 "$T/bad.err" sh "$MPIRUN" 2 sh "$T/hide.sh" "$T/plugdir" "" \
        "$T/plug.hidden" "$CREW" run --mpi --plugin "$T/plugdir/testplug.so" --data "$DATA" \
        -t 'echo x' >"$T/bad.out"
    crew_lines "$T/bad.err" >"$T/bad.msg"
    echo "crew run (rank 1 on $(uname -n)): cannot load plugin $T/plugdir/testplug.so:" \
        "$T/plugdir/testplug.so: cannot open shared object file: No such file or directory" \
        >"$T/bad.want"
    same "$T/bad.msg" "$T/bad.want" "a plugin only the root has: the message"
    [ ! -s "$T/bad.out" ] || fail "a plugin only the root has: output $(cat "$T/bad.out")"
fi

# ---- bad input ----------------------------------------------------------------------------

note "bad input"
# One message from the root (not one per rank), and mpirun exits 2.
# bad_input WANT ARGS...: -np 2; the one crew line on stderr is WANT.
bad_input() {
    msg=$1
    shift
    expect_rc_err 2 "$T/bad.err" sh "$MPIRUN" 2 "$CREW" run --mpi "$@" >"$T/bad.out"
    crew_lines "$T/bad.err" >"$T/bad.msg"
    echo "$msg" >"$T/bad.want"
    same "$T/bad.msg" "$T/bad.want" "bad input $*: the message"
    [ ! -s "$T/bad.out" ] || fail "bad input $*: output $(cat "$T/bad.out")"
}
bad_input "crew run: cannot use data $T/nope.crew: no such file or directory" \
    --plugin "$PLUG" --data "$T/nope.crew" -t 'echo x'
bad_input "crew run: cannot load plugin $T/nope.so: $T/nope.so: cannot open shared object file: No such file or directory" \
    --plugin "$T/nope.so" --data "$DATA" -t 'echo x'
bad_input "crew run: unknown option --bogus" \
    --plugin "$PLUG" --data "$DATA" --bogus -t 'echo x'
bad_input "crew run: cannot open task file $T/nope.tasks: No such file or directory" \
    --plugin "$PLUG" --data "$DATA" "$T/nope.tasks"
# --list: once, as without --mpi
run --list >"$T/list.ref"
expect_rc 0 sh "$MPIRUN" 2 "$CREW" run --mpi --list --plugin "$PLUG" >"$T/list.out"
same "$T/list.out" "$T/list.ref" "--list under MPI"
# crew without crew-mpi beside it
mkdir "$T/lonely"
cp "$CREW" "$T/lonely/crew"
LD_LIBRARY_PATH="$(dirname "$CREW")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    expect_rc_err 2 "$T/bad.err" "$T/lonely/crew" run --mpi --plugin "$PLUG" --data "$DATA" \
    -t 'echo x' >"$T/bad.out"
[ "$(lines "$T/bad.err")" = 1 ] && grep -q "^crew run: --mpi: this crew was built without MPI" \
    "$T/bad.err" || fail "crew without crew-mpi: $(cat "$T/bad.err")"
[ ! -s "$T/bad.out" ] || fail "crew without crew-mpi: output"

# A rank bound to one core but given two workers says so (once per such
# rank), and runs anyway.
note "binding: -np 1 --bind-to core with -j 2"
CREW_TEST_BIND=core expect_rc_err 0 "$T/bind.err" sh "$MPIRUN" 1 "$CREW" run --mpi -j 2 \
    --plugin "$PLUG" --data "$DATA" --format raw -t 'echo bound' >"$T/bind.out"
[ "$(cat "$T/bind.out")" = "[bound]" ] || fail "binding: output $(cat "$T/bind.out")"
[ "$(grep -c '^crew run: note: this rank may use 1 CPU but runs 2 workers (give mpirun --bind-to none, or --map-by slot:PE=2)$' "$T/bind.err")" = 1 ] ||
    fail "binding: the note: $(cat "$T/bind.err")"

echo "PASS"
