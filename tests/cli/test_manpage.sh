#!/bin/sh
# test_manpage.sh CREW TESTPLUG BUILD -- docs/crew.1 renders without a
# warning, and names every long option `crew run --help` lists (so the two
# cannot drift apart).
set -eu
crew=$1
page=${CREW_SOURCE_DIR:?}/docs/crew.1
command -v groff >/dev/null || { echo "skip: groff missing"; exit 77; }
warnings=$(groff -man -ww -z "$page" 2>&1)
if [ -n "$warnings" ]; then
    echo "crew.1 renders with warnings:"; echo "$warnings"; exit 1
fi
text=$(groff -man -Tutf8 -P-c "$page" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g; s/.\x08//g')
missing=""
for cmd in run pack inspect demo; do
    for opt in $("$crew" "$cmd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
        printf '%s\n' "$text" | grep -q -- "$opt" || missing="$missing $cmd:$opt"
    done
done
if [ -n "$missing" ]; then
    echo "options in --help but not in crew.1:$missing"; exit 1
fi
echo "test_manpage: ok"
