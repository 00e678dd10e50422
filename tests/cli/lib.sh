# lib.sh -- what the crew run tests share; sourced by tests/cli/test_*.sh,
# which are run as `sh SCRIPT CREW TESTPLUG_SO BUILD_DIR MKSNAP`.
#
# Sets CREW, PLUG, BUILD, MKSNAP, HERE (this directory: a script elsewhere
# sets CLI_DIR to it before sourcing), T (a temporary
# directory removed at exit, also TMPDIR so crew's spool files land there)
# and CHECK (runcheck.py, the expected outputs worked out independently).

if [ $# -lt 4 ]; then
    echo "usage: sh $0 CREW TESTPLUG_SO BUILD_DIR MKSNAP" >&2
    exit 2
fi
CREW=$1
PLUG=$2
BUILD=$3
MKSNAP=$4
HERE=${CLI_DIR:-$(cd "$(dirname "$0")" && pwd)}
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/crew-clitest.XXXXXX")
TMPDIR=$T
export TMPDIR
trap 'rm -rf "$T"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
CHECK="python3 $HERE/runcheck.py"

# Whether this build uses a sanitizer (slower, more memory): from the cache.
SANITIZED=0
if grep -Eq '^CREW_SANITIZE:[A-Z]*=.+' "$BUILD/../CMakeCache.txt" 2>/dev/null; then
    SANITIZED=1
fi

# A sanitizer's report ends crew with a status no test expects (not 0, 1,
# 2 or 130), so a leak or an error cannot pass for an ordinary failure.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=86"
TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}exitcode=86"
export ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

note() {
    echo "-- $*"
}

# expect_rc WANT CMD...: run CMD, fail unless its exit status is WANT.
expect_rc() {
    want=$1
    shift
    set +e
    "$@"
    got=$?
    set -e
    [ "$got" = "$want" ] || fail "exit status $got, want $want: $*"
}

# same FILE1 FILE2 WHAT: byte-for-byte equal.
same() {
    cmp -s "$1" "$2" || {
        cmp "$1" "$2" >&2 || true
        fail "$3: $1 and $2 differ"
    }
}

# lines FILE: its number of lines.
lines() {
    wc -l <"$1" | tr -d ' '
}

# wait_for TRIES CONDITION...: poll every 0.1 s until CONDITION succeeds;
# fail after TRIES tries (a guard against hanging, not a time limit on crew).
wait_for() {
    tries=$1
    shift
    while ! "$@"; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || fail "gave up waiting for: $*"
        sleep 0.1
    done
}

# log_has LOG N: the job log has more than N task lines.
log_has() {
    [ -f "$1" ] && [ "$(($(lines "$1") - 2))" -gt "$2" ]
}

# gone PID: the process has ended (and was reaped, or is a zombie).
gone() {
    ! kill -0 "$1" 2>/dev/null || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

DATA=$T/data.crew
DATA_N=100000
"$MKSNAP" "$DATA" $DATA_N || fail "mksnap"
$CHECK snapshot "$DATA" $DATA_N || fail "the snapshot mksnap wrote"

# crew run with the test plugin over $DATA.
run() {
    "$CREW" run --plugin "$PLUG" --data "$DATA" "$@"
}
# In the background, as crew itself (so that $! is crew's pid, for kill).
run_bg() {
    exec "$CREW" run --plugin "$PLUG" --data "$DATA" "$@"
}
