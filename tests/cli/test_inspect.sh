#!/bin/sh
# Description: crew inspect prints a snapshot's header fields (as od reads
# them from the file), its checksum state, and its data sets with their
# statistics, as text and as JSON; a snapshot without a catalog says so;
# truncated, corrupt (data, catalog, string offsets), empty, missing and
# non-snapshot files, directories and FIFOs give exit 2 and one line naming
# the file and the reason.  The binary input assumes a little-endian machine.
set -eu
CREW=$1
SRC=$3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# u64 FILE OFFSET: the 8-byte unsigned integer there, in decimal
u64() {
    od -An -j "$2" -N 8 -t u8 "$1" | tr -d ' '
}

# poke FILE OFFSET ESCAPES: overwrite bytes in place
poke() {
    printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2> /dev/null
}

# human BYTES: as crew prints sizes (powers of 1024, one decimal)
human() {
    awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u, " "); i = 1
                           while (b >= 1024 && i < 5) { b /= 1024; i++ }
                           printf(i == 1 ? "%.0f %s\n" : "%.1f %s\n", b, u[i]) }'
}

# expect_error TEXT CMD...: exit 2 and one stderr line (or two, for usage
# errors) whose first contains TEXT
expect_error() {
    text=$1
    shift
    set +e
    "$@" > out.txt 2> err.txt
    got=$?
    set -e
    [ "$got" -eq 2 ] || fail "$*: exit $got, want 2 ($(cat err.txt))"
    head -n 1 err.txt | grep -qF -- "$text" || fail "$*: stderr '$(cat err.txt)' lacks '$text'"
    [ "$(grep -cv '^try: crew inspect --help$' err.txt)" -eq 1 ] || fail "$*: stderr: $(cat err.txt)"
}

"$CREW" inspect --help > help.txt
grep -q '^usage: crew inspect' help.txt || fail "inspect --help"

# 1, -2, 10 as i32; two lines
printf '\001\000\000\000\376\377\377\377\012\000\000\000' > n.bin
printf 'ab\ncde\n' > w.txt
"$CREW" pack -o good.crew --raw i32 n.bin --lines w.txt 2> /dev/null

size=$(wc -c < good.crew | tr -d ' ')
dsize=$(u64 good.crew 32)
root=$(u64 good.crew 40)
[ "$(u64 good.crew 24)" -eq 4096 ] || fail "data offset"
[ "$dsize" -eq $((size - 4096)) ] || fail "data size $dsize in a file of $size"
checksum=$(od -An -j 48 -N 8 -t x8 good.crew | tr -d ' ')
{
    echo "file          good.crew"
    echo "format        crew snapshot version 1, little-endian"
    echo "file size     $size bytes ($(human "$size"))"
    echo "data size     $dsize bytes ($(human "$dsize")) at offset 4096"
    printf 'root          0x%x\n' "$root"
    echo "checksum      not verified (xxh3 0x$checksum)"
    echo "data sets     2"
    printf '  %-4s  type  %12s  %14s\n' name rows bytes
    printf '  %-4s  %-4s  %12s  %14s\n' n i32 3 12 w str 2 $((7 + 3 * 8))
} > want.txt
"$CREW" inspect good.crew > got.txt
cmp -s want.txt got.txt || fail "inspect good.crew: $(diff want.txt got.txt)"

# --verify: the same, with the checksum checked
sed 's/^checksum      not verified/checksum      ok/' want.txt > want-ok.txt
"$CREW" inspect --verify good.crew > got.txt
cmp -s want-ok.txt got.txt || fail "inspect --verify: $(diff want-ok.txt got.txt)"

# --stats: of the values, and of the strings' lengths
"$CREW" inspect --stats good.crew > got.txt
grep -q '^  name  type  *rows  *bytes  min  max  mean  nan$' got.txt || fail "stats header: $(cat got.txt)"
awk '$1 == "n" && $5 == -2 && $6 == 10 && $7 == 3 && $8 == 0 { a = 1 }
     $1 == "w" && $5 == 2 && $6 == 3 && $7 == 2.5 && $8 == 0 { b = 1 }
     END { exit !(a && b) }' got.txt || fail "inspect --stats: $(cat got.txt)"

# --json: valid, with the same facts
"$CREW" inspect --json --stats good.crew > got.json
if command -v python3 > /dev/null 2>&1 && python3 -c pass 2> /dev/null; then
    python3 - "$size" "$dsize" "$root" > py.txt <<'EOF' || fail "inspect --json: $(cat got.json) $(cat py.txt)"
import json, sys
d = json.load(open("got.json"))
size, dsize, root = map(int, sys.argv[1:])
assert d["file"] == "good.crew" and d["format_version"] == 1, d
assert d["file_size"] == size and d["data_size"] == dsize and d["root"] == root, d
assert d["checksum"] == "not verified", d
n, w = d["datasets"]
assert n == {"name": "n", "type": "i32", "rows": 3, "bytes": 12, "min": -2, "max": 10,
             "mean": 3, "nan": 0}, n
assert w["name"] == "w" and w["type"] == "str" and w["rows"] == 2 and w["mean"] == 2.5, w
EOF
else
    grep -q '"datasets": \[{"name": "n", "type": "i32", "rows": 3, "bytes": 12, "min": -2' got.json ||
        fail "inspect --json: $(cat got.json)"
fi

# a snapshot that holds something else than a catalog
cp "$SRC/tests/fuzz/corpus/good.crew" other.crew
"$CREW" inspect other.crew > got.txt
printf 'no catalog (root = 0x%x)\n' "$(u64 other.crew 40)" > want.txt
tail -n 1 got.txt | cmp -s want.txt - || fail "no catalog: $(cat got.txt)"
"$CREW" inspect --json other.crew | grep -q '"datasets": null}$' || fail "no catalog, json"

# a changed data byte: unseen without --verify, MISMATCH with it
cp good.crew data.crew
poke data.crew $((4096 + 64)) '\005'
"$CREW" inspect --stats data.crew > got.txt
awk '$1 == "n" && $5 == -2 && $6 == 10 && $7 == 13 / 3 { ok = 1 } END { exit !ok }' got.txt ||
    fail "changed value: $(cat got.txt)"
expect_error "data.crew: the snapshot data does not match its checksum" \
    "$CREW" inspect --verify data.crew
grep -q '^checksum      MISMATCH' out.txt || fail "MISMATCH: $(cat out.txt)"

# a corrupt catalog: its entries beyond the data; an entry's type; a string offset
entries=$(u64 good.crew $((4096 + root + 16)))
cp good.crew cat.crew
poke cat.crew $((4096 + root + 16)) '\377\377\377\377\377\377\377\177'
expect_error "cat.crew: the catalog: the data is not in the expected format" "$CREW" inspect cat.crew
cp good.crew entry.crew
poke entry.crew $((4096 + entries + 40 + 8)) '\143'
expect_error "entry.crew: data set 2: the data is not in the expected format" "$CREW" inspect entry.crew
cp good.crew row.crew
offsets=$(u64 good.crew $((4096 + entries + 40 + 32)))
poke row.crew $((4096 + offsets + 8)) '\000'
"$CREW" inspect row.crew > /dev/null || fail "a bad row is found only by reading it"
expect_error "row.crew: data set 'w': row 0: the data is not in the expected format" \
    "$CREW" inspect --stats row.crew

# files that are no snapshots, or not whole
head -c $((size - 1)) good.crew > trunc.crew
expect_error "trunc.crew: the snapshot file is truncated" "$CREW" inspect trunc.crew
head -c 100 good.crew > header.crew
expect_error "header.crew: the snapshot file is truncated" "$CREW" inspect header.crew
echo "just some text, long enough to hold a header if it were one" > text.crew
expect_error "text.crew: not a crew snapshot" "$CREW" inspect text.crew
: > empty.crew
expect_error "empty.crew: the snapshot file is empty" "$CREW" inspect empty.crew
expect_error "missing.crew: no such file or directory" "$CREW" inspect missing.crew
mkdir dir.crew
expect_error "dir.crew: Is a directory" "$CREW" inspect dir.crew
mkfifo fifo.crew
expect_error "fifo.crew: not a regular file" "$CREW" inspect fifo.crew

# the command line
expect_error "which snapshot?" "$CREW" inspect
expect_error "unknown option '--frobnicate'" "$CREW" inspect --frobnicate good.crew
expect_error "one snapshot at a time" "$CREW" inspect good.crew data.crew
echo "test_inspect: ok"
