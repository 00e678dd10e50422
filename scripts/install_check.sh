#!/bin/sh
# install_check.sh PREFIX -- compile and run a program against an installed
# crew, once through pkg-config and once through find_package(crew).
set -eu
prefix=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/x.c" <<'C'
#include <crew.h>
#include <stdio.h>
static void sum(void *ctx, size_t lo, size_t hi)
{
    long *total = ctx;
    long s = 0;
    for (size_t i = lo; i < hi; i++) s += (long)i;
    __atomic_add_fetch(total, s, __ATOMIC_RELAXED);
}
int main(void)
{
    crew *pool;
    long total = 0;
    if (crew_open(&pool, &(crew_config){.workers = 2}) != 0) return 1;
    int rc = crew_for(pool, 0, 1000, 0, sum, &total);
    crew_close(pool);
    printf("crew %s: %ld\n", crew_version(), total);
    return rc != 0 || total != 499500;
}
C
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# shellcheck disable=SC2046
cc -o "$tmp/x" "$tmp/x.c" $(pkg-config --cflags --libs crew)
LD_LIBRARY_PATH="$prefix/lib" "$tmp/x"
# shellcheck disable=SC2046
cc -static-libgcc -o "$tmp/xs" "$tmp/x.c" -I"$prefix/include" "$prefix/lib/libcrew.a" \
    $(pkg-config --static --libs-only-l --libs-only-other libxxhash) -pthread
"$tmp/xs"
mkdir "$tmp/cm"
cat >"$tmp/cm/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.18)
project(x C)
find_package(crew REQUIRED)
add_executable(x ../x.c)
target_link_libraries(x PRIVATE crew::crew)
add_executable(xs ../x.c)
target_link_libraries(xs PRIVATE crew::crew_static)
C
cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/cm/b" >/dev/null
LD_LIBRARY_PATH="$prefix/lib" "$tmp/cm/b/x"
"$tmp/cm/b/xs"
echo "install check: pkg-config (shared, static) and find_package(crew) (crew::crew, crew::crew_static) work"

# The command, its man page, and a plugin built with the example's Makefile
# against the installed headers, run over a snapshot packed by the
# installed crew (no LD_LIBRARY_PATH: crew finds its library by itself).
src=$(cd "$(dirname "$0")/.." && pwd)
"$prefix/bin/crew" --version
test -s "$prefix/share/man/man1/crew.1"
test -s "$prefix/include/crew_plugin.h"
cp "$src/examples/plugins/survey.c" "$src/examples/plugins/Makefile" "$tmp/"
make -s -C "$tmp" >/dev/null
printf 'x,y\n1,10\n2,20\n3,30\n4,40\n' >"$tmp/d.csv"
"$prefix/bin/crew" pack -o "$tmp/d.crew" --csv "$tmp/d.csv" 2>/dev/null
printf 'mean x\nsum y\n' >"$tmp/tasks"
"$prefix/bin/crew" run --plugin "$tmp/survey.so" --data "$tmp/d.crew" --format raw \
    --no-progress "$tmp/tasks" >"$tmp/out"
printf '2.5\n100\n' | cmp -s - "$tmp/out" || {
    echo "install check: crew run with the installed crew gave:"; cat "$tmp/out"; exit 1
}
echo "install check: the installed crew packs, runs a plugin built by examples/plugins/Makefile"
