#!/bin/sh
# demo.sh BUILD_DIR -- the main job, end to end: one big data set built once
# in a shared arena and frozen, 64 statistics run over it as crew_run tasks
# on one worker and then on every usable CPU; then a pointer-rich structure
# (a trie) saved as a snapshot and queried by forked processes; then a
# fragile parser run in worker processes, where bad records cost one task each.
set -eu
build=${1:-build}
echo "== the seed job: 64 functions over one shared read-only data set"
"$build/examples/seed_job" --size "${CREW_DEMO_MIB:-512}" --processes
echo
echo "== a pointer-rich structure in an arena, shared by processes"
"$build/examples/arena_trie"
echo
echo "== bad records cost one task each: a parser that crashes, aborts, exits or hangs"
"$build/examples/isolation"
