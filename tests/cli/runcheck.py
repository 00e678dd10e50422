"""runcheck.py -- what `crew run` with the test plugin must write, worked
out here from the task lines alone, and checks of its output and job log.

This is a second, independent statement of crew run's formats, for the
tests under tests/cli: task lines (`function argument`, blank and # lines
skipped), the test plugin's functions (testplug.c), the records (tsv,
jsonl, raw), the snapshot layout (docs/SNAPSHOT.md) and the job log.

  runcheck.py expect FORMAT TASKS DATA [--each FN] [--processes]
      the expected output, on stdout
  runcheck.py check FORMAT TASKS DATA OUTPUT [--each FN] [--processes]
                [--unordered] [--log LOG] [--prefix]
      exit 1 with a message when OUTPUT is not what it must be; --prefix:
      OUTPUT may hold only the first records (a run that was stopped);
      --log: the job log must list exactly the records of OUTPUT
  runcheck.py tasks KIND N
      write a task file of N lines of a kind (see make_tasks)
  runcheck.py snapshot DATA N
      check that DATA is a snapshot holding N bytes of the pattern
      (i * 7) & 255 at its root
"""
import errno
import json
import struct
import sys


def fail(msg):
    sys.stderr.write("runcheck: " + msg + "\n")
    sys.exit(1)


# ---- task lines ----------------------------------------------------------

def parse_tasks(data, each=None):
    """[(fn, arg)] as bytes, in task order."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline ending the last line
    tasks = []
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        if each is not None:
            tasks.append((each, line))
            continue
        i = 0
        while i < len(line) and line[i:i + 1] in (b" ", b"\t"):
            i += 1
        if i == len(line) or line[i:i + 1] == b"#":
            continue
        j = i
        while j < len(line) and line[j:j + 1] not in (b" ", b"\t"):
            j += 1
        k = j
        while k < len(line) and line[k:k + 1] in (b" ", b"\t"):
            k += 1
        tasks.append((line[i:j], line[k:]))
    return tasks


# ---- the snapshot ----------------------------------------------------------

def read_snapshot(path):
    """The arena's bytes, after checking the header as SNAPSHOT.md says."""
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:8] != b"CREWSNAP":
        fail("%s: no CREWSNAP magic" % path)
    endian, version, header_size = struct.unpack_from("<III", blob, 8)
    if endian != 0x01020304 or version != 1 or header_size != 128:
        fail("%s: bad header" % path)
    data_offset, data_size, root = struct.unpack_from("<QQQ", blob, 24)
    if data_offset % 4096 or data_offset + data_size != len(blob):
        fail("%s: bad sizes" % path)
    data = blob[data_offset:]
    prologue = (b"CREWARNA" + struct.pack("<IIQQ", 0x01020304, 1, data_size, root) +
                bytes(32))
    if data[:64] != prologue:
        fail("%s: the prologue is not as SNAPSHOT.md describes" % path)
    return data, root


def check_snapshot(path, n):
    data, root = read_snapshot(path)
    want = bytes((i * 7) & 255 for i in range(n))
    if root < 64 or data[root:root + n] != want:
        fail("%s: the pattern is not at the root" % path)


# ---- the test plugin -------------------------------------------------------

def c_leading_int(arg):
    """What sscanf %lld / atoi read: blanks, a sign, digits; None if none."""
    s = arg.lstrip(b" \t\n\v\f\r")
    i = 1 if s[:1] in (b"+", b"-") else 0
    j = i
    while j < len(s) and s[j:j + 1].isdigit():
        j += 1
    if j == i:
        return None
    return int(s[:j])


def big_output(n):
    out = bytearray()
    i = 0
    while i < n:
        line = b"%d\n" % i
        line = line[:n - i]
        out += line
        i += len(line)
    return bytes(out)


ETIMEDOUT = -errno.ETIMEDOUT
EINVAL = -errno.EINVAL


def model(fn, arg, data_path, processes):
    """(status, code, signal, output) of one task of the test plugin."""
    if fn == b"echo":
        return "ok", 0, None, b"[" + arg + b"]\n"
    if fn == b"square":
        x = c_leading_int(arg)
        if x is None:
            return "error", 1, None, b"square: '" + arg + b"' is not a number\n"
        return "ok", 0, None, b"%d\n" % (x * x)
    if fn == b"fail":
        v = c_leading_int(arg) or 0
        return "error", v if v > 0 else 1, None, b"failing as asked\n"
    if fn == b"crash":
        if not processes:
            fail("crash under threads ends the whole run: not modelled")
        return "crashed", 11, "SIGSEGV", b""
    if fn == b"hang":
        return "timeout", ETIMEDOUT, None, b""
    if fn == b"big":
        return "ok", 0, None, big_output(c_leading_int(arg) or 0)
    if fn == b"negative":
        return "invalid", EINVAL, None, b"said " + arg + b"\n"
    if fn == b"die_on_rank":
        # outside MPI, or on a rank it spares: always the same record
        if c_leading_int(arg) is None:
            return "error", 1, None, b"die_on_rank: '" + arg + b"' is not a rank\n"
        return "ok", 0, None, b"alive\n"
    if fn == b"datasum":
        data, _ = read_snapshot(data_path)
        return "ok", 0, None, b"%d %d\n" % (len(data), sum(data))
    fail("no model for function %r" % fn)


# ---- records -----------------------------------------------------------------

def tsv_escape(b):
    return (b.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")
            .replace(b"\r", b"\\r"))


def tsv_unescape(b):
    out = bytearray()
    i = 0
    while i < len(b):
        c = b[i:i + 1]
        if c == b"\\" and i + 1 < len(b):
            n = b[i + 1:i + 2]
            out += {b"t": b"\t", b"n": b"\n", b"r": b"\r"}.get(n, n)
            i += 2
        else:
            out += c
            i += 1
    return bytes(out)


def record(fmt, seq, fn, arg, result):
    status, code, sig, out = result
    if fmt == "raw":
        return out
    if fmt == "tsv":
        shown = out[:-1] if out.endswith(b"\n") else out
        return b"%d\t%s\t%s\t%s\t%d\t%s\n" % (seq, fn, tsv_escape(arg), status.encode(), code,
                                             tsv_escape(shown))
    obj = {"seq": seq, "function": fn.decode(), "argument": arg.decode(), "status": status,
           "code": code, "output": out.decode()}
    if sig:
        obj["signal"] = sig
    return obj


def expected(fmt, tasks, data_path, processes):
    return [record(fmt, seq, fn, arg, model(fn, arg, data_path, processes))
            for seq, (fn, arg) in enumerate(tasks, 1)]


def parse_jsonl(blob):
    if blob and not blob.endswith(b"\n"):
        fail("the jsonl output does not end with a newline")
    objs = []
    for n, line in enumerate(blob.split(b"\n")[:-1], 1):
        try:
            objs.append(json.loads(line.decode("utf-8")))
        except ValueError as e:
            fail("jsonl line %d is not JSON (%s): %r" % (n, e, line[:200]))
    return objs


def show(x):
    s = repr(x)
    return s if len(s) < 300 else s[:300] + "..."


def compare(fmt, want, blob, unordered, prefix):
    """The records of blob, checked against want; returns their seqs."""
    if fmt == "raw":
        if unordered or prefix:
            fail("raw output is checked only whole and in order")
        if blob != b"".join(want):
            got, exp = blob, b"".join(want)
            at = next((i for i in range(min(len(got), len(exp))) if got[i] != exp[i]),
                      min(len(got), len(exp)))
            fail("raw output differs at byte %d (got %d bytes, want %d): got %s want %s" %
                 (at, len(got), len(exp), show(got[at:at + 40]), show(exp[at:at + 40])))
        return list(range(1, len(want) + 1))
    if fmt == "tsv":
        if blob and not blob.endswith(b"\n"):
            fail("the tsv output does not end with a newline")
        got = [l + b"\n" for l in blob.split(b"\n")[:-1]]
        seqs = [int(l.split(b"\t", 1)[0]) for l in got]
    else:
        got = parse_jsonl(blob)
        seqs = [o.get("seq") for o in got]
    if unordered:
        key = (lambda r: r) if fmt == "tsv" else (lambda r: json.dumps(r, sort_keys=True))
        w = sorted(want, key=key)
        g = sorted(got, key=key)
        if prefix:
            w = sorted((want[s - 1] for s in seqs if 1 <= s <= len(want)), key=key)
        if g != w:
            extra = [r for r in g if r not in w][:3]
            missing = [r for r in w if r not in g][:3]
            fail("records differ (as sets): %d got, %d expected; unexpected %s; missing %s" %
                 (len(g), len(w), show(extra), show(missing)))
        if len(set(seqs)) != len(seqs):
            fail("a task has two records")
        return seqs
    if prefix:
        want = want[:len(got)]
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            fail("record %d: got %s, want %s" % (i + 1, show(g), show(w)))
    if len(got) != len(want):
        fail("%d records, want %d" % (len(got), len(want)))
    return seqs


def check_log(log_path, tasks, results, out_size, seqs_out):
    with open(log_path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines[-1] != b"":
        fail("the job log does not end with a newline")
    lines.pop()
    if not lines[0].startswith(b"# crew joblog 1\t"):
        fail("job log line 1: %s" % show(lines[0]))
    if lines[1] != (b"seq\tstatus\tcode\tsignal\tstart\tduration\tretries\toutput_end\t"
                    b"function\targument"):
        fail("job log line 2: %s" % show(lines[1]))
    seqs, last_end = [], 0
    for n, line in enumerate(lines[2:], 3):
        f = line.split(b"\t")
        if len(f) != 10:
            fail("job log line %d has %d fields" % (n, len(f)))
        seq = int(f[0])
        if not 1 <= seq <= len(tasks):
            fail("job log line %d: no task %d" % (n, seq))
        fn, arg = tasks[seq - 1]
        status, code, sig, _ = results[seq - 1]
        if (f[8], tsv_unescape(f[9])) != (fn, arg):
            fail("job log line %d: task %d is %s, not %s" % (n, seq, show(f[8:]), show((fn, arg))))
        if (f[1].decode(), int(f[2]), f[3].decode()) != (status, code, sig or ""):
            fail("job log line %d: %s, want %s" % (n, show(f[1:4]), show((status, code, sig))))
        end = int(f[7])
        if end <= last_end and results[seq - 1][3] != b"" :
            fail("job log line %d: output_end %d does not grow (was %d)" % (n, end, last_end))
        last_end = end
        seqs.append(seq)
    if last_end != out_size:
        fail("the job log ends at output byte %d, the output has %d" % (last_end, out_size))
    if sorted(seqs) != sorted(seqs_out):
        fail("the job log lists tasks %s, the output %s" % (show(sorted(seqs)),
                                                            show(sorted(seqs_out))))


# ---- task files ----------------------------------------------------------------

def make_tasks(kind, n):
    out = sys.stdout.buffer
    if kind == "square":            # square I
        for i in range(1, n + 1):
            out.write(b"square %d\n" % i)
    elif kind == "square-slow":     # square I 2000: 2 ms each
        for i in range(1, n + 1):
            out.write(b"square %d 2000\n" % i)
    elif kind == "shuffled":        # square I with sleeps that finish out of order
        for i in range(1, n + 1):
            out.write(b"square %d %d\n" % (i, (i * 7919) % 13 * 500))
    elif kind == "mixed":           # one fail in every 5
        for i in range(1, n + 1):
            out.write(b"fail %d\n" % (i % 7 + 2) if i % 5 == 0 else b"echo %d\n" % i)
    else:
        fail("unknown task kind " + kind)


def main(argv):
    if len(argv) < 2:
        fail("usage: see the file's header")
    cmd = argv[1]
    if cmd == "tasks":
        make_tasks(argv[2], int(argv[3]))
        return
    if cmd == "snapshot":
        check_snapshot(argv[2], int(argv[3]))
        return
    pos, opts, i = [], {}, 2
    while i < len(argv):
        a = argv[i]
        if a in ("--each", "--log"):
            opts[a] = argv[i + 1]
            i += 2
        elif a.startswith("--"):
            opts[a] = True
            i += 1
        else:
            pos.append(a)
            i += 1
    fmt, task_path, data_path = pos[0], pos[1], pos[2]
    with open(task_path, "rb") as f:
        each = opts.get("--each")
        tasks = parse_tasks(f.read(), each.encode() if each else None)
    processes = "--processes" in opts
    want = expected(fmt, tasks, data_path, processes)
    if cmd == "expect":
        if fmt == "jsonl":
            for o in want:
                sys.stdout.write(json.dumps(o) + "\n")
        else:
            sys.stdout.buffer.write(b"".join(want))
        return
    if cmd != "check":
        fail("unknown command " + cmd)
    with open(pos[3], "rb") as f:
        blob = f.read()
    seqs = compare(fmt, want, blob, "--unordered" in opts, "--prefix" in opts)
    if "--log" in opts:
        results = [model(fn, arg, data_path, processes) for fn, arg in tasks]
        check_log(opts["--log"], tasks, results, len(blob), seqs)


if __name__ == "__main__":
    main(sys.argv)
