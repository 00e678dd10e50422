# Description: crew run's progress bar: drawn when stderr is a terminal (a
# pseudo-terminal here), never in the records; not drawn on a pipe or a
# file unless --progress asks for it; --no-progress silences it.
set -eu
. "$(dirname "$0")/lib.sh"

# 300 tasks of 5 ms on two workers: the run lasts long enough for the bar,
# which is drawn as soon as it starts and then ten times a second.
$CHECK tasks square 300 | sed 's/$/ 5000/' >"$T/tasks"
$CHECK expect tsv "$T/tasks" "$DATA" >"$T/want"

# on_pty ERR_LOG OUT ARGS...: crew run ARGS with stderr (and stdin) on a
# pseudo-terminal, stdout to OUT; what the terminal showed goes to ERR_LOG.
# Prints crew's exit status.
on_pty() {
    python3 - "$@" <<'EOF'
import os, pty, sys
err_log, out_path, args = sys.argv[1], sys.argv[2], sys.argv[3:]
pid, master = pty.fork()
if pid == 0:
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.execv(args[0], args)
seen = bytearray()
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:  # EIO: the child closed the terminal
        break
    if not chunk:
        break
    seen += chunk
_, status = os.waitpid(pid, 0)
with open(err_log, "wb") as f:
    f.write(seen)
print(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode")
      else status >> 8)
EOF
}

note "a terminal"
rc=$(on_pty "$T/tty" "$T/out" "$CREW" run -p "$PLUG" -d "$DATA" -j 2 "$T/tasks")
[ "$rc" = 0 ] || fail "on a terminal: exit $rc"
same "$T/out" "$T/want" "records with the bar on a terminal"
python3 - "$T/tty" <<'EOF' || fail "the bar on the terminal: $(cat -v "$T/tty" | tail -c 600)"
import re, sys
s = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
assert "crew run" in s, "no label"
# a bar while it runs: done/total, percent, ETA
assert re.search(r"\r?crew run .*\b\d+/300\b.*%.*ETA", s), "no bar with done/total and ETA"
# the summary it leaves: all 300 tasks
assert re.search(r"crew run .*\b300 tasks in\b", s), "no final summary"
# nothing but the bar: no record reached the terminal
assert "\tok\t" not in s, "records on the terminal"
EOF
rc=$(on_pty "$T/tty" "$T/out" "$CREW" run -p "$PLUG" -d "$DATA" -j 2 --no-progress "$T/tasks")
[ "$rc" = 0 ] || fail "--no-progress: exit $rc"
same "$T/out" "$T/want" "records with --no-progress"
[ ! -s "$T/tty" ] || fail "--no-progress on a terminal showed: $(cat -v "$T/tty")"

note "a file or a pipe"
expect_rc 0 run -j 2 "$T/tasks" >"$T/out" 2>"$T/err"
same "$T/out" "$T/want" "records, stderr to a file"
[ ! -s "$T/err" ] || fail "a bar on a file: $(cat -v "$T/err")"
run -j 2 "$T/tasks" 2>&1 >"$T/out" | cat >"$T/err"
same "$T/out" "$T/want" "records, stderr to a pipe"
[ ! -s "$T/err" ] || fail "a bar on a pipe: $(cat -v "$T/err")"
# asked for: drawn anyway, and never mixed into the records
expect_rc 0 run -j 2 --progress "$T/tasks" >"$T/out" 2>"$T/err"
same "$T/out" "$T/want" "records with --progress"
grep -q "crew run .*300 tasks in" "$T/err" || fail "--progress: no summary: $(cat -v "$T/err")"
# failures are counted in the summary
printf 'fail 3\necho x\nfail 4\n' >"$T/fail.tasks"
expect_rc 1 run -j 2 --progress "$T/fail.tasks" >"$T/out" 2>"$T/err"
grep -q "crew run .*3 tasks in.*2 failed" "$T/err" || fail "--progress: failures: $(cat -v "$T/err")"

echo "PASS"
