#!/bin/sh
# deps.sh -- install the Debian packages crew's build, tests and benchmarks
# need, when they are missing.  Installing needs root; without root it only
# says what is missing.  Usage: scripts/deps.sh [build|bench]
set -eu
# python3: the command-line tests compute expected results with it;
# groff-base: the man page is checked to render without warnings.
# openmpi-bin, libopenmpi-dev: the MPI part (libcrew_mpi, crew run --mpi)
# and its tests, which run under mpirun; iproute2: ip(8), with which
# tests/mpi/test_hosts.sh makes two hosts of network namespaces.
want="cmake make gcc g++ clang libclang-rt-14-dev pkg-config libxxhash-dev python3 groff-base
      openmpi-bin libopenmpi-dev iproute2"
if [ "${1:-build}" = bench ]; then
    # parallel and python3: the peers bench_proc runs its process pools
    # against (GNU parallel; Debian's own python3, standard library only);
    # parallel and findutils (xargs -P): the peers bench_cli runs `crew
    # run` against (findutils is on every Debian; named for clarity).
    want="$want libtbb-dev parallel python3 findutils"
fi
missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing Debian packages:$missing (run as root to install them)" >&2
    exit 1
fi
echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
