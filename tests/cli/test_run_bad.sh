# Description: crew run refuses bad input with one line naming the problem
# and exit status 2, before writing anything: an output or job log that
# existed is unchanged, one that did not is not created.
set -eu
. "$(dirname "$0")/lib.sh"

SRC=${CREW_SOURCE_DIR:-$HERE/../..}
CC=${CC:-cc}
W=$T/w

# state_of DIR: every file under DIR with its checksum.
state_of() {
    (cd "$1" && find . -print | sort | while read -r f; do
        if [ -f "$f" ]; then cksum <"$f" | sed "s|^|$f |"; else echo "$f"; fi
    done)
}

# try_bad PATTERN ARGS...: in $W, crew run ARGS must exit 2 with one line
# on stderr (besides a "try: crew run --help" hint) that starts with
# "crew run: " and matches PATTERN (grep -E), write nothing on stdout, and
# leave $W as it was.
try_bad() {
    pat=$1
    shift
    state_of "$W" >"$T/before"
    set +e
    (cd "$W" && exec "$CREW" run "$@") >"$T/stdout" 2>"$T/stderr"
    rc=$?
    set -e
    what="crew run $*"
    [ $rc = 2 ] || { cat "$T/stderr" >&2; fail "$what: exit $rc, want 2"; }
    grep -v '^try: crew run --help$' "$T/stderr" >"$T/msg" || true
    [ "$(lines "$T/msg")" = 1 ] || { cat "$T/stderr" >&2; fail "$what: not one line"; }
    grep -q '^crew run: ' "$T/msg" || fail "$what: message $(cat "$T/msg")"
    grep -Eq -- "$pat" "$T/msg" || fail "$what: message '$(cat "$T/msg")' lacks '$pat'"
    [ ! -s "$T/stdout" ] || fail "$what: wrote on stdout"
    state_of "$W" >"$T/after"
    cmp -s "$T/before" "$T/after" || {
        diff "$T/before" "$T/after" >&2 || true
        fail "$what: changed files"
    }
    for d in "$T"/crew-run*; do
        [ ! -e "$d" ] || fail "$what: left a spool directory"
    done
}

# bad PATTERN ARGS...: try_bad with -o out --joblog log added, once where
# neither exists (they must not be created) and once where both hold
# something (it must stay).
bad() {
    rm -rf "$W"
    mkdir "$W"
    try_bad "$@" -o out --joblog log
    printf 'old output\n' >"$W/out"
    printf 'old log\n' >"$W/log"
    try_bad "$@" -o out --joblog log
}

# bad_as_is PATTERN ARGS...: try_bad in an empty $W, ARGS as they are.
bad_as_is() {
    rm -rf "$W"
    mkdir "$W"
    try_bad "$@"
}

OK="-p $PLUG -d $DATA"
printf 'echo 1\nsquare 2\n' >"$T/ok.tasks"

note "usage"
bad "unknown option --bogus" $OK --bogus "$T/ok.tasks"
bad "unknown option -Z" $OK -Z "$T/ok.tasks"
bad_as_is "option -j needs a value" $OK "$T/ok.tasks" -o out --joblog log -j
bad "bad -j '-3'" $OK -j -3 "$T/ok.tasks"
bad "bad -j 'abc'" $OK -j abc "$T/ok.tasks"
bad "bad -j '1.5'" $OK -j 1.5 "$T/ok.tasks"
bad "bad -j '99999'" $OK -j 99999 "$T/ok.tasks"
echo lots >"$T/jobs"
bad "jobs.*holds 'lots'" $OK -j "$T/jobs" "$T/ok.tasks"
bad "timeout.*isolation processes" $OK --timeout 1 --isolation threads "$T/ok.tasks"
bad "retries.*isolation processes" $OK --retries 1 --isolation threads "$T/ok.tasks"
bad "bad --timeout '-1'" $OK --timeout -1 "$T/ok.tasks"
bad "bad --timeout '0'" $OK --timeout 0 "$T/ok.tasks"
bad "bad --retries 'x'" $OK --retries x "$T/ok.tasks"
bad "bad --memory-limit 'lots'" $OK --memory-limit lots "$T/ok.tasks"
bad "bad --window '0'" $OK --window 0 "$T/ok.tasks"
bad "bad --format 'xml'" $OK --format xml "$T/ok.tasks"
bad "bad --isolation 'fork'" $OK --isolation fork "$T/ok.tasks"
bad_as_is "resume needs --joblog" $OK --resume -o out "$T/ok.tasks"
bad_as_is "resume needs --joblog" $OK --resume-failed -o out "$T/ok.tasks"
bad "plugin.*required" -d "$DATA" "$T/ok.tasks"
bad "data.*required" -p "$PLUG" "$T/ok.tasks"
bad "one task file at most" $OK "$T/ok.tasks" "$T/ok.tasks"
bad "not both" $OK -t 'echo 1' "$T/ok.tasks"
bad "each.*not --task" $OK -t 'echo 1' --each echo
bad "each nosuch: the plugin has no such function" $OK --each nosuch "$T/ok.tasks"

note "--help"
"$CREW" run --help >"$T/help" 2>"$T/help.err" || fail "crew run --help: exit $?"
grep -q '^usage: crew run ' "$T/help" || fail "crew run --help: no usage"
[ ! -s "$T/help.err" ] || fail "crew run --help wrote on stderr"
"$CREW" run -h >"$T/help2" || fail "crew run -h: exit $?"
same "$T/help" "$T/help2" "-h and --help"

note "plugins"
bad "cannot load plugin .*nope.so" -p "$T/nope.so" -d "$DATA" "$T/ok.tasks"
echo 'not a shared object' >"$T/x.so"
bad "cannot load plugin .*x.so" -p "$T/x.so" -d "$DATA" "$T/ok.tasks"
bad "cannot load plugin" -p "$T" -d "$DATA" "$T/ok.tasks"
if command -v "$CC" >/dev/null 2>&1; then
    # a shared object that is no plugin
    printf 'int not_a_plugin(void) { return 1; }\n' >"$T/none.c"
    "$CC" -shared -fPIC -o "$T/none.so" "$T/none.c" || fail "cc none.so"
    bad "none.so is not a crew plugin.*crew_plugin_table" -p "$T/none.so" -d "$DATA" \
        "$T/ok.tasks"
    # a plugin built for ABI 99, and tables that are wrong in other ways
    for kind in abi size dup noname nofn nofns; do
        cat >"$T/$kind.c" <<EOF
#include <crew_plugin.h>
static int f(const crew_arena *d, const char *a, crew_out *o)
{
    (void)d;
    (void)a;
    return crew_out_printf(o, "f\n");
}
static const crew_function fns[] = {
    {"$([ $kind = noname ] && echo 'bad name' || echo f)", $([ $kind = nofn ] && echo 0 || echo f), "f"},
    {"$([ $kind = dup ] && echo f || echo g)", f, "g"},
};
__attribute__((visibility("default"))) const crew_plugin crew_plugin_table = {
    $([ $kind = abi ] && echo 99 || echo CREW_PLUGIN_ABI),
    $([ $kind = size ] && echo 8 || echo 'sizeof(crew_plugin)'),
    "$kind", "a plugin built wrong", fns, $([ $kind = nofns ] && echo 0 || echo 2), 0, 0};
EOF
        "$CC" -shared -fPIC -I"$SRC/include" -o "$T/$kind.so" "$T/$kind.c" ||
            fail "cc $kind.so"
    done
    bad "ABI 99.*ABI [0-9]+" -p "$T/abi.so" -d "$DATA" "$T/ok.tasks"
    bad "crew_plugin_table of 8 bytes" -p "$T/size.so" -d "$DATA" "$T/ok.tasks"
    bad "defines function 'f' twice" -p "$T/dup.so" -d "$DATA" "$T/ok.tasks"
    bad "function 1 has a bad name" -p "$T/noname.so" -d "$DATA" "$T/ok.tasks"
    bad "function 1 has no code" -p "$T/nofn.so" -d "$DATA" "$T/ok.tasks"
    bad "lists no functions" -p "$T/nofns.so" -d "$DATA" "$T/ok.tasks"
else
    note "no C compiler ($CC): plugins built wrong not tested"
fi

note "snapshots"
bad "cannot use data .*missing.crew" -p "$PLUG" -d "$T/missing.crew" "$T/ok.tasks"
: >"$T/empty.crew"
bad "cannot use data .*empty.crew.*empty" -p "$PLUG" -d "$T/empty.crew" "$T/ok.tasks"
head -c 5000 "$DATA" >"$T/trunc.crew"
bad "cannot use data .*trunc.crew.*truncated" -p "$PLUG" -d "$T/trunc.crew" "$T/ok.tasks"
head -c 100 "$DATA" >"$T/short.crew"
bad "cannot use data .*short.crew.*truncated" -p "$PLUG" -d "$T/short.crew" "$T/ok.tasks"
{ printf 'XXXXSNAP'; tail -c +9 "$DATA"; } >"$T/magic.crew"
bad "cannot use data .*magic.crew.*not a crew snapshot" -p "$PLUG" -d "$T/magic.crew" \
    "$T/ok.tasks"
# one data byte changed: only --verify reads the data to see it
python3 - "$DATA" "$T/flip.crew" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[-100] ^= 1
open(sys.argv[2], "wb").write(b)
EOF
bad "cannot use data .*flip.crew.*checksum" -p "$PLUG" -d "$T/flip.crew" --verify "$T/ok.tasks"
bad "cannot use data" -p "$PLUG" -d "$T" "$T/ok.tasks"

note "task files"
bad "cannot open task file .*missing.tasks" $OK "$T/missing.tasks"
bad "task file .* is a directory" $OK "$T"
{ for i in $(seq 16); do echo "echo $i"; done; echo "nosuch 1"; echo "echo 18"; } \
    >"$T/unknown.tasks"
bad "unknown.tasks:17: unknown function 'nosuch'" $OK "$T/unknown.tasks"
bad "unknown.tasks:17: unknown function 'nosuch'" $OK --isolation processes "$T/unknown.tasks"
bad "task:2: unknown function 'nosuch'" $OK -t 'echo 1' -t 'nosuch 2'
printf 'echo 1\necho a\000b\necho 3\n' >"$T/nul.tasks"
bad "nul.tasks:2: a NUL byte" $OK "$T/nul.tasks"
# from a pipe the tasks before the bad line have run: the message still
# names the line, and the exit status is 2
set +e
"$CREW" run $OK - <"$T/unknown.tasks" >"$T/pipe.out" 2>"$T/pipe.err"
rc=$?
set -e
[ $rc = 2 ] || fail "unknown function from stdin: exit $rc"
grep -q "^crew run: -:17: unknown function 'nosuch'" "$T/pipe.err" ||
    fail "unknown function from stdin: $(cat "$T/pipe.err")"

note "outputs"
bad_as_is "cannot write output .*/nodir/out" $OK -o "$T/nodir/out" --joblog log "$T/ok.tasks"
bad_as_is "cannot write job log .*/nodir/log" $OK -o out --joblog "$T/nodir/log" "$T/ok.tasks"
bad_as_is "cannot write output" $OK -o "$T" --joblog log "$T/ok.tasks"
bad_as_is "job log" $OK -o out --joblog "$T" "$T/ok.tasks"

note "resume from another job's log"
rm -rf "$W"
mkdir "$W"
for i in 1 2 3 4 5; do echo "echo $i"; done >"$T/a.tasks"
(cd "$W" && "$CREW" run $OK -o out --joblog log "$T/a.tasks")
[ "$(lines "$W/out")" = 5 ] || fail "the first job"
# other tasks (the third differs)
sed 's/^echo 3$/echo three/' "$T/a.tasks" >"$T/b.tasks"
try_bad "job log log is from another job.*task 3" $OK -o out --joblog log --resume "$T/b.tasks"
# fewer tasks than the log has
head -n 3 "$T/a.tasks" >"$T/c.tasks"
try_bad "job log log is from another job.*tasks end at 3" $OK -o out --joblog log --resume "$T/c.tasks"
# other data
"$MKSNAP" "$T/other.crew" 5000
try_bad "job log log is from another job" -p "$PLUG" -d "$T/other.crew" -o out --joblog log \
    --resume "$T/a.tasks"
# other data of the same size and shape: only the contents differ
head -c 1000 /dev/zero >"$T/zeros.bin"
head -c 1000 /dev/zero | tr '\0' 'x' >"$T/xs.bin"
"$CREW" pack -o "$T/zeros.crew" --name d --raw u8 "$T/zeros.bin" 2>/dev/null
"$CREW" pack -o "$T/xs.crew" --name d --raw u8 "$T/xs.bin" 2>/dev/null
[ "$(wc -c <"$T/zeros.crew")" = "$(wc -c <"$T/xs.crew")" ] || fail "the two packs differ in size"
mkdir "$T/w2"
(cd "$T/w2" && "$CREW" run -p "$PLUG" -d "$T/zeros.crew" -o out --joblog log "$T/a.tasks")
saved_w=$W
W=$T/w2
try_bad "job log log is from another job" -p "$PLUG" -d "$T/xs.crew" -o out --joblog log \
    --resume "$T/a.tasks"
W=$saved_w
# not a job log at all
mv "$W/log" "$T/log.saved"
printf 'just some text\nand more\n' >"$W/log"
try_bad "job log log is from another job" $OK -o out --joblog log --resume "$T/a.tasks"
# a task number far beyond the log's length (must not allocate for it)
cp "$T/log.saved" "$W/log"
printf '1000000000\tok\t0\t\t0\t0\t0\t10\techo\ta\n' >>"$W/log"
try_bad "task number 1000000000 after only 5 lines" $OK -o out --joblog log --resume "$T/a.tasks"
mv "$T/log.saved" "$W/log"
# an output shorter than the log says: not the output of this job
printf 'x\n' >"$W/out"
try_bad "output out is shorter" $OK -o out --joblog log --resume "$T/a.tasks"
rm "$W/out"
try_bad "output out is shorter" $OK -o out --joblog log --resume "$T/a.tasks"

echo "PASS"
