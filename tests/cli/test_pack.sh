#!/bin/sh
# Description: crew pack builds snapshots from raw arrays, text lines and
# CSV files (files and stdin, inputs larger than its 1 MiB chunks); the data
# sets it lists have the row counts, minimums, maximums, means and NaN
# counts that od and awk compute from the same inputs; every bad input or
# command line exits 2 with a one-line message naming the problem and
# leaves the output as it was (absent, or the old file) and no stray files.
# Binary inputs are written little-endian: the test assumes such a machine.
set -eu
CREW=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# bytes FILE: write the bytes an awk program prints as octal escapes.
bytes() {
    printf "$(cat)" > "$1"
}

# expect_od NAME ODTYPE FILE: NAME's rows, min, max, mean and NaN count in
# `crew inspect --stats out.crew` equal those of od's reading of FILE.
expect_od() {
    want=$(od -An -v -t "$2" "$3" | awk '
        { for (i = 1; i <= NF; i++) { v = $i + 0; n++; s += v
              if (n == 1 || v < mn) mn = v
              if (n == 1 || v > mx) mx = v } }
        END { printf "%d %.17g %.17g %.17g 0\n", n, mn, mx, s / n }')
    expect_stats "$1" "$want"
}

# expect_stats NAME "ROWS MIN MAX MEAN NANS" (numbers compared as numbers)
expect_stats() {
    "$CREW" inspect --stats out.crew > inspect.txt
    awk -v name="$1" -v want="$2" '
        $1 == name { found++; split(want, w, " ")
            if ($3 != w[1] + 0 || $5 + 0 != w[2] + 0 || $6 + 0 != w[3] + 0 ||
                $7 + 0 != w[4] + 0 || $8 != w[5] + 0) bad = 1 }
        END { exit !(found == 1 && !bad) }' inspect.txt ||
        fail "$1: want rows/min/max/mean/nan $2, inspect says: $(grep "^  $1 " inspect.txt)"
}

# expect_error STATUS TEXT CMD...: CMD exits STATUS, its first stderr line
# contains TEXT, and no other line is there but usage's pointer to --help.
expect_error() {
    status=$1 text=$2
    shift 2
    set +e
    "$@" > out.txt 2> err.txt
    got=$?
    set -e
    [ "$got" -eq "$status" ] || fail "$*: exit $got, want $status ($(cat err.txt))"
    head -n 1 err.txt | grep -qF -- "$text" || fail "$*: stderr '$(cat err.txt)' lacks '$text'"
    [ "$(grep -cv '^try: crew pack --help$' err.txt)" -eq 1 ] || fail "$*: stderr: $(cat err.txt)"
}

# --help, usage
"$CREW" pack --help > help.txt
grep -q '^usage: crew pack -o OUT.crew' help.txt || fail "pack --help"
"$CREW" pack -h | cmp -s - help.txt || fail "pack -h differs from --help"

expect_error 2 "no output file" "$CREW" pack

# ---- raw arrays of every type ------------------------------------------------
awk 'BEGIN { srand(11); for (i = 0; i < 4000; i++) printf "\\%03o", int(rand() * 256) }' | bytes a.i32
cp a.i32 b.u32
cp a.i32 c.u8
cp a.i32 d.f32
# i64: random low halves, high halves all 0 or all 1 bits (values within 2^33)
awk 'BEGIN { srand(12); for (i = 0; i < 500; i++) {
             for (k = 0; k < 4; k++) printf "\\%03o", int(rand() * 256)
             h = rand() < 0.5 ? 0 : 255; for (k = 0; k < 4; k++) printf "\\%03o", h } }' | bytes e.i64
cp e.i64 f.u64
# f64: 20-bit mantissas, exponents 1..16, either sign: every sum is exact
awk 'BEGIN { srand(13); for (i = 0; i < 1000; i++) { for (k = 0; k < 5; k++) printf "\\000"
             printf "\\%03o\\%03o\\%03o", int(rand() * 256), int(rand() * 256), rand() < 0.3 ? 192 : 64 } }' \
    | bytes g.f64
"$CREW" pack -o out.crew --raw i32 a.i32 --raw u32 b.u32 --raw u8 c.u8 --name floats \
    --raw f32 d.f32 --raw i64 e.i64 --raw u64 f.u64 --raw f64 g.f64 2> err.txt
grep -Eq '^crew pack: packed 7 data sets, [0-9.]+ KiB, into out.crew$' err.txt ||
    fail "summary: $(cat err.txt)"
[ "$(wc -l < err.txt)" -eq 1 ] || fail "more than the summary on stderr: $(cat err.txt)"
"$CREW" inspect --verify out.crew > inspect.txt
grep -q '^checksum      ok' inspect.txt || fail "checksum: $(cat inspect.txt)"
awk 'listing { print $1, $2, $3, $4 } /^  name / { listing = 1 }' inspect.txt > sets.txt
printf '%s\n' "a i32 1000 4000" "b u32 1000 4000" "c u8 4000 4000" "floats f32 1000 4000" \
    "e i64 500 4000" "f u64 500 4000" "g f64 1000 8000" | cmp -s - sets.txt ||
    fail "raw data sets: $(cat inspect.txt)"
expect_od a d4 a.i32
expect_od b u4 b.u32
expect_od c u1 c.u8
expect_od e d8 e.i64
expect_od g f8 g.f64

# stdin (a pipe, read in chunks: 3 MiB and 5 bytes of 7s), named "stdin"
head -c 3145733 /dev/zero | tr '\000' '\007' | "$CREW" pack -o out.crew --raw u8 - 2> err.txt
expect_stats stdin "3145733 7 7 7 0"
"$CREW" pack -o out.crew --name ints --raw i32 - < a.i32 2> err.txt
expect_od ints d4 a.i32

# ---- text lines ----------------------------------------------------------------
printf 'first\n\nthird line\r\nfourth\tTab\n  spaced  \nlast without newline' > words.txt
# a line far longer than a chunk between many short ones
awk 'BEGIN { s = "x"; while (length(s) < 2000000) s = s s; s = substr(s, 1, 2000000)
             for (i = 0; i < 200000; i++) { print i; if (i % 70000 == 5) print s } }' > long.txt
"$CREW" pack -o out.crew --lines words.txt --name big --lines long.txt --name w2 --lines - \
    < words.txt 2> err.txt
for set in words:words.txt big:long.txt w2:words.txt; do
    want=$(LC_ALL=C awk '{ sub(/\r$/, ""); l = length($0); n++; s += l
                           if (n == 1 || l < mn) mn = l; if (n == 1 || l > mx) mx = l }
                         END { printf "%d %d %d %.17g 0\n", n, mn, mx, s / n }' "${set#*:}")
    expect_stats "${set%%:*}" "$want"
done
awk '$1 == "words" && $2 == "str" && $3 == 6 && $4 == 7 * 8 + 6 + 1 + 11 + 11 + 11 + 21 { ok = 1 }
     END { exit !ok }' inspect.txt || fail "words: $(cat inspect.txt)"
# an empty file is an empty data set
: > empty.txt
"$CREW" pack -o out.crew --lines empty.txt 2> err.txt
expect_stats empty "0 - - - 0"

# ---- CSV -----------------------------------------------------------------------
# 120,000 rows (several blocks of the second pass), quoted fields, blanks,
# CRLF on some lines, empty fields, exponents
awk 'BEGIN { print "x,\"y\", w"
             for (i = 1; i <= 120000; i++) {
                 x = (i * 37 % 1000 - 500) / 8
                 y = i % 7 == 0 ? "" : (i % 13) * 0.25
                 if (i % 11 == 0) y = "\"" y "\""
                 w = i % 5 == 0 ? " 1e2 " : -i / 4
                 printf "%s,%s,%s%s\n", x, y, w, i % 3 == 0 ? "\r" : "" } }' > data.csv
csv_want() { # COLUMN-NUMBER FILE [FIRST-DATA-LINE]
    awk -F, -v c="$1" -v first="${3:-2}" 'NR >= first { sub(/\r$/, ""); v = $c; gsub(/[" ]/, "", v)
        if (v == "") { nan++; next }
        v += 0; n++; s += v; if (n == 1 || v < mn) mn = v; if (n == 1 || v > mx) mx = v }
        END { printf "%d %.17g %.17g %.17g %d\n", n + nan, mn, mx, s / n, nan }' "$2"
}
"$CREW" pack -o out.crew --csv data.csv 2> err.txt
expect_stats x "$(csv_want 1 data.csv)"
expect_stats y "$(csv_want 2 data.csv)"
expect_stats w "$(csv_want 3 data.csv)"
[ "$(awk '$1 == "y" { print $8 }' inspect.txt)" -eq 17142 ] || fail "NaNs in y: $(cat inspect.txt)"
# --columns picks and orders, --name prefixes; stdin works
"$CREW" pack -o out.crew --name P --columns w,x --csv - < data.csv 2> err.txt
"$CREW" inspect out.crew | awk 'listing { print $1 } /^  name / { listing = 1 }' > names.txt
printf 'P.w\nP.x\n' | cmp -s - names.txt || fail "--columns w,x: $(cat names.txt)"
expect_stats P.w "$(csv_want 3 data.csv)"
# --no-header: the first line is data; col1, col2, ...
tail -n +2 data.csv > nohdr.csv
"$CREW" pack -o out.crew --no-header --columns col3,col1 --csv nohdr.csv 2> err.txt
expect_stats col1 "$(csv_want 1 nohdr.csv 1)"
expect_stats col3 "$(csv_want 3 nohdr.csv 1)"
# blank lines are skipped; a last line ending in a lone CR is a line
printf 'a,b\r\n1,2\r\n\r\n \r\n3,4\r\n\n5,6\r' > blanks.csv
"$CREW" pack -o out.crew --csv blanks.csv 2> err.txt
expect_stats a "3 1 5 3 0"
expect_stats b "3 2 6 4 0"
# text columns left out are not parsed; a header name may hold a quoted comma
printf 'id,"name, full",v\n1,alice,0.5\n2,bob,\n' > mixed.csv
"$CREW" pack -o out.crew --columns v,id --csv mixed.csv 2> err.txt
expect_stats v "2 0.5 0.5 0.5 1"
expect_stats id "2 1 2 1.5 0"
"$CREW" pack -o out.crew --output=out2.crew --csv mixed.csv 2> /dev/null &&
    fail "two outputs accepted"
printf 'id,"name, full"\n1,2\n' > comma.csv
"$CREW" pack --output=out.crew --csv comma.csv 2> err.txt
"$CREW" inspect out.crew | grep -q '^  name, full  f64 ' || fail "quoted header: $("$CREW" inspect out.crew)"

# ---- progress bar: only when asked (stderr is no terminal here) ----------------
# The input stays open until the bar has been drawn (or 30 s have passed),
# so that the painter thread gets its turn however loaded the machine is.
rm -f err.txt
{
    cat long.txt
    i=0
    while ! grep -q packing err.txt 2> /dev/null && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
} | "$CREW" pack -o out.crew --progress --lines - 2> err.txt
grep -q 'packing' err.txt || fail "--progress drew nothing: $(cat err.txt)"
# the bar is cleared with \r and ESC [K, so the summary ends its line
tail -n 1 err.txt | grep -q 'crew pack: packed 1 data set, .* into out.crew$' ||
    fail "after the bar: $(cat err.txt)"

# ---- bad inputs and command lines: exit 2, one line, nothing written ------------
printf 'a,b,c\n1,2,3\n4,5,6\n7,8,9\n1,abc,3\n' > bad.csv
printf 'a,b,c\n1,2,3\n1,2\n' > short.csv
printf '1,2,3\n4,5,6,7\n' > long.csv
printf 'a,b,c\n1,"2,3\n' > quote.csv
printf 'a,b,c\n1,"2"x,3\n' > after.csv
printf 'a,,c\n1,2,3\n' > noname.csv
printf 'a,b,a\n1,2,3\n' > twice.csv
printf 'ok\nba\000d\nfine\n' > nul.txt
printf 'a,b\n1,2\n3,\0004\n' > nul.csv
{ cat a.i32; printf x; } > odd.bin
: > nothing.csv
printf 'a,b,c\n1,2,3\n' > good.csv
printf 'a\n1\n1e999\n' > huge.csv
ln -s good.csv link.crew
mkdir sub
touch out.txt err.txt before.txt after.txt
ls -A > before.txt
expect_error 2 "bad.csv:5:2: 'abc' is not a number" "$CREW" pack -o bad.crew --csv bad.csv
expect_error 2 "short.csv:3: 2 fields, but the header names 3" "$CREW" pack -o bad.crew --csv short.csv
expect_error 2 "long.csv:2: 4 fields, but the first line has 3" \
    "$CREW" pack -o bad.crew --no-header --csv long.csv
expect_error 2 "quote.csv:2:2: a quoted field has no closing quote" "$CREW" pack -o bad.crew --csv quote.csv
expect_error 2 "after.csv:2:2: text after a closing quote" "$CREW" pack -o bad.crew --csv after.csv
expect_error 2 "noname.csv:1:2: the header gives this column no name" "$CREW" pack -o bad.crew --csv noname.csv
expect_error 2 "twice.csv:1:3: a second column named 'a'" "$CREW" pack -o bad.crew --csv twice.csv
expect_error 2 "huge.csv:3:1: '1e999' is too large for a double" "$CREW" pack -o bad.crew --csv huge.csv
expect_error 2 "data set name at byte 2 holds a control character" \
    "$CREW" pack -o bad.crew --name "$(printf 'a\tb')" --csv good.csv
expect_error 2 "good.csv: the output is also an input" "$CREW" pack -o good.csv --csv good.csv
expect_error 2 "link.crew: exists and is not a regular file" "$CREW" pack -o link.crew --csv good.csv
expect_error 2 "bad.csv: no column named 'd'" "$CREW" pack -o bad.crew --columns a,d --csv bad.csv
expect_error 2 "--columns names 'a' twice" "$CREW" pack -o bad.crew --columns a,a --csv bad.csv
expect_error 2 "nothing.csv: empty" "$CREW" pack -o bad.crew --csv nothing.csv
expect_error 2 "nul.csv:3: the line holds a NUL byte" "$CREW" pack -o bad.crew --csv nul.csv
expect_error 2 "nul.txt:2: the line holds a NUL byte" "$CREW" pack -o bad.crew --lines nul.txt
expect_error 2 "odd.bin: 4001 bytes is not a whole number of i32 elements" \
    "$CREW" pack -o bad.crew --raw i32 odd.bin
expect_error 2 "stdin: 4001 bytes is not a whole number of f64" "$CREW" pack -o bad.crew --raw f64 - < odd.bin
expect_error 2 "missing.txt: No such file or directory" "$CREW" pack -o bad.crew --lines missing.txt
expect_error 2 "sub: is a directory" "$CREW" pack -o bad.crew --lines sub
expect_error 2 "two data sets named 'words'" "$CREW" pack -o bad.crew --lines words.txt --lines words.txt
expect_error 2 "two data sets named 'a'" "$CREW" pack -o bad.crew --csv good.csv --name a --lines words.txt
expect_error 2 "nodir/bad.crew: cannot write in nodir: No such file or directory" \
    "$CREW" pack -o nodir/bad.crew --lines words.txt
expect_error 2 "words.txt/bad.crew: cannot write in words.txt: not a directory" \
    "$CREW" pack -o words.txt/bad.crew --lines words.txt
expect_error 2 "sub: is a directory" "$CREW" pack -o sub --lines words.txt
if [ "$(id -u)" -ne 0 ]; then
    mkdir ro && chmod 555 ro
    expect_error 2 "ro/bad.crew: cannot write in ro: Permission denied" \
        "$CREW" pack -o ro/bad.crew --lines words.txt
    rmdir ro
fi
expect_error 2 "unknown option '--bogus'" "$CREW" pack -o bad.crew --bogus --lines words.txt
expect_error 2 "unknown type 'i16'" "$CREW" pack -o bad.crew --raw i16 a.i32
expect_error 2 "--raw needs TYPE and FILE" "$CREW" pack -o bad.crew --raw i32
expect_error 2 "--lines needs FILE" "$CREW" pack -o bad.crew --lines
expect_error 2 "-o needs a file name" "$CREW" pack --lines words.txt -o
expect_error 2 "no output file" "$CREW" pack --lines words.txt
expect_error 2 "no inputs" "$CREW" pack -o bad.crew
expect_error 2 "must come before an input" "$CREW" pack -o bad.crew --lines words.txt --name x
expect_error 2 "apply to --csv inputs only" "$CREW" pack -o bad.crew --columns a --lines words.txt
expect_error 2 "stdin (-) can be read only once" "$CREW" pack -o bad.crew --lines - --csv -
expect_error 2 "unexpected argument 'words.txt'" "$CREW" pack -o bad.crew words.txt
ls -A > after.txt
cmp -s before.txt after.txt || fail "a failed pack left files: $(diff before.txt after.txt)"

# a failed pack leaves an existing output as it was
"$CREW" pack -o keep.crew --lines words.txt 2> /dev/null
cp keep.crew keep.orig
expect_error 2 "bad.csv:5:2:" "$CREW" pack -o keep.crew --csv bad.csv
cmp -s keep.crew keep.orig || fail "a failed pack changed its output"
echo "test_pack: ok"
