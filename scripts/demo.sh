#!/bin/sh
# demo.sh BUILD_DIR -- the main job, end to end.  First `crew demo`: an
# order book of about 1 GiB built in a shared arena with every CPU, frozen,
# and a few dozen analyses of it run as crew tasks on one worker and then
# on every usable CPU, which must agree bit for bit.  Then the same idea
# from the library: 64 statistics over one data set, in threads and in
# worker processes; a pointer-rich structure (a trie) saved as a snapshot
# and queried by forked processes; and a fragile parser run in worker
# processes, where bad records cost one task each.
set -eu
build=${1:-build}
echo "== crew demo: a few dozen analyses of one shared, read-only data set"
"$build/crew" demo ${CREW_DEMO_SIZE:+--size "$CREW_DEMO_SIZE"}
echo
echo "== the seed job, from the library: 64 functions over one data set, threads and processes"
"$build/examples/seed_job" --size "${CREW_DEMO_MIB:-512}" --processes
echo
echo "== a pointer-rich structure in an arena, shared by processes"
"$build/examples/arena_trie"
echo
echo "== bad records cost one task each: a parser that crashes, aborts, exits or hangs"
"$build/examples/isolation"
