# Description: the crew command's own surface: --version says the version
# crew.h defines and the plugin ABI crew_plugin.h defines; --help and bad
# commands; crew run --trace writes a Chrome trace with one event per task,
# for thread and process pools.
set -eu
. "$(dirname "$0")/lib.sh"

SRC=${CREW_SOURCE_DIR:-$HERE/../..}
major=$(sed -n 's/^#define CREW_VERSION_MAJOR \([0-9]*\)$/\1/p' "$SRC/include/crew.h")
minor=$(sed -n 's/^#define CREW_VERSION_MINOR \([0-9]*\)$/\1/p' "$SRC/include/crew.h")
patch=$(sed -n 's/^#define CREW_VERSION_PATCH \([0-9]*\)$/\1/p' "$SRC/include/crew.h")
abi=$(sed -n 's/^#define CREW_PLUGIN_ABI \([0-9]*\)u$/\1/p' "$SRC/include/crew_plugin.h")
want="crew $major.$minor.$patch (plugin ABI $abi)"
for flag in --version -V; do
    got=$("$CREW" $flag)
    [ "$got" = "$want" ] || fail "crew $flag: '$got', want '$want'"
done

"$CREW" --help >"$T/help" || fail "crew --help failed"
for cmd in run pack inspect demo; do
    grep -q "^  $cmd " "$T/help" || fail "crew --help does not list $cmd"
    "$CREW" $cmd --help >"$T/h.$cmd" 2>"$T/e.$cmd" || fail "crew $cmd --help: exit $?"
    grep -q "usage: crew $cmd" "$T/h.$cmd" || fail "crew $cmd --help: no usage line"
    [ ! -s "$T/e.$cmd" ] || fail "crew $cmd --help wrote on stderr"
done
set +e
"$CREW" >/dev/null 2>"$T/e"; rc=$?
[ $rc = 2 ] || fail "crew with no command: exit $rc, want 2"
"$CREW" frobnicate >/dev/null 2>"$T/e"; rc=$?
set -e
[ $rc = 2 ] || fail "crew frobnicate: exit $rc, want 2"
grep -q "unknown command 'frobnicate'" "$T/e" || fail "crew frobnicate: $(cat "$T/e")"

"$MKSNAP" "$T/d.crew" 4096
n=300
i=1
while [ $i -le $n ]; do echo "square $i"; i=$((i + 1)); done >"$T/tasks"
for iso in threads processes; do
    "$CREW" run -p "$PLUG" -d "$T/d.crew" -j 2 --isolation $iso --trace "$T/trace.$iso" \
        "$T/tasks" >"$T/out.$iso" || fail "$iso run failed"
    python3 - "$T/trace.$iso" $n <<'PY' || fail "$iso trace"
import json, sys
doc = json.load(open(sys.argv[1]))
events = doc["traceEvents"] if isinstance(doc, dict) else doc
tasks = [e for e in events if e.get("name") == "task"]
want = int(sys.argv[2])
if len(tasks) != want:
    sys.exit(f"{len(tasks)} task events, want {want}")
if any(e.get("dur", 0) < 0 for e in tasks):
    sys.exit("a negative duration")
PY
done
# What a plugin prints with printf goes to stderr, never into the records
# on stdout (threads: the same process; processes: inherited descriptors).
for iso in threads processes; do
    "$CREW" run -p "$PLUG" -d "$T/d.crew" --isolation $iso -t 'shout a' -t 'shout b' \
        >"$T/shout.out" 2>"$T/shout.err" || fail "shout ($iso) failed"
    printf '1\tshout\ta\tok\t0\tquiet a\n2\tshout\tb\tok\t0\tquiet b\n' >"$T/shout.want"
    cmp -s "$T/shout.want" "$T/shout.out" || { cat "$T/shout.out"; fail "shout ($iso): records"; }
    grep -q '^shouted a$' "$T/shout.err" && grep -q '^shouted b$' "$T/shout.err" ||
        fail "shout ($iso): printf output not on stderr"
done
# A negative return is reserved: status invalid, code -22 (CREW_EINVAL),
# and what the function wrote is kept, as for any task that returned.
for iso in threads processes; do
    set +e
    "$CREW" run -p "$PLUG" -d "$T/d.crew" --isolation $iso -t 'negative x' >"$T/neg.out"
    rc=$?
    set -e
    [ $rc = 1 ] || fail "negative ($iso): exit $rc, want 1"
    printf '1\tnegative\tx\tinvalid\t-22\tsaid x\n' | cmp -s - "$T/neg.out" ||
        fail "negative ($iso): $(cat "$T/neg.out")"
done

# -o - is standard output, not a file named "-"
(cd "$T" && "$CREW" run -p "$PLUG" -d "$T/d.crew" -t 'echo x' -o - >"$T/dash.out") ||
    fail "-o - failed"
[ ! -e "$T/-" ] || fail "-o - wrote a file named -"
printf '1\techo\tx\tok\t0\t[x]\n' | cmp -s - "$T/dash.out" || fail "-o -: $(cat "$T/dash.out")"
echo "test_misc: ok"
