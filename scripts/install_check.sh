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

# The MPI part, where it was built: crew run --mpi through the installed
# crew (which runs the installed crew-mpi) gives the same records, and a
# program finds crew::crew_mpi with find_package(crew).
if [ -x "$prefix/bin/crew-mpi" ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
    mpirun=$(command -v mpirun.openmpi || command -v mpirun)
    timeout 120 "$mpirun" --oversubscribe -np 2 "$prefix/bin/crew" run --mpi \
        --plugin "$tmp/survey.so" --data "$tmp/d.crew" --format raw --no-progress \
        "$tmp/tasks" >"$tmp/out.mpi"
    cmp -s "$tmp/out" "$tmp/out.mpi" || {
        echo "install check: crew run --mpi gave:"; cat "$tmp/out.mpi"; exit 1
    }
    mkdir "$tmp/mpi"
    cat >"$tmp/mpi/m.c" <<'C'
#include <crew_mpi.h>
#include <stdio.h>
#include <string.h>
static int twice(const void *shared, const void *arg, void *result)
{
    (void)shared;
    int x;
    memcpy(&x, arg, sizeof x);
    x *= 2;
    memcpy(result, &x, sizeof x);
    return 0;
}
int main(int argc, char **argv)
{
    int level, me;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &level);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    crew *pool;
    if (crew_open(&pool, &(crew_config){.workers = 1}) != 0) return 1;
    crew_mpi_fn fns[] = {{"twice", twice}};
    int args[100], res[100];
    crew_mpi_task t[100];
    for (int i = 0; i < 100; i++) {
        args[i] = i;
        t[i] = (crew_mpi_task){.fn = 0, .arg = &args[i], .arg_size = sizeof(int),
                               .result = &res[i], .result_size = sizeof(int)};
    }
    int rc = crew_mpi_run(MPI_COMM_WORLD, pool, NULL, fns, 1, me ? NULL : t, me ? 0 : 100, NULL);
    int bad = rc != 0;
    for (int i = 0; !me && i < 100; i++) bad |= res[i] != 2 * i;
    crew_close(pool);
    MPI_Finalize();
    if (!me) printf("crew_mpi_run: %s\n", bad ? "WRONG" : "ok");
    return bad;
}
C
    cat >"$tmp/mpi/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.18)
project(m C)
find_package(crew REQUIRED)
add_executable(m m.c)
target_link_libraries(m PRIVATE crew::crew_mpi)
C
    cmake -S "$tmp/mpi" -B "$tmp/mpi/b" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
    cmake --build "$tmp/mpi/b" >/dev/null
    LD_LIBRARY_PATH="$prefix/lib" timeout 120 "$mpirun" --oversubscribe -np 2 "$tmp/mpi/b/m"
    echo "install check: crew run --mpi with the installed crew-mpi, and find_package(crew) with crew::crew_mpi"
fi
