#!/bin/sh
# mpirun.sh NP PROGRAM [ARGS...] -- run an MPI test on this machine.
#
# Every MPI test goes through here, so that they all run alike: Open MPI's
# mpirun (mpirun.openmpi where MPICH sits beside it), more ranks than cores
# allowed, shared memory and self as the only transports (no warnings about
# network interfaces the test does not use; stderr stays visible), and a
# time limit, so that a rank stuck in a collective cannot hang ctest.
# (test_hosts.sh, whose ranks are on two simulated hosts, adds TCP with
# --mca on the command line, which outranks these variables.)
set -eu
np=$1
shift
if command -v mpirun.openmpi >/dev/null 2>&1; then
    mpirun=mpirun.openmpi
else
    mpirun=mpirun
fi
here=$(cd "$(dirname "$0")" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
# ASan builds: memory Open MPI keeps until exit is not crew's leak.  The
# suppressions name only Open MPI's libraries (lsan.supp says why, and why
# the slow unwinder).
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$here/lsan.supp:fast_unwind_on_malloc=0"
# TSan builds: one report inside Open MPI's shared-memory transport (its
# own two locks, taken from one thread); tsan.supp says more.
export TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}suppressions=$here/tsan.supp"
# Ranks are not bound to cores (Open MPI binds a job of one or two ranks
# one core each): the tests give ranks several workers.  CREW_TEST_BIND
# sets another binding, for the test of what crew says about it.
exec timeout 240 "$mpirun" --oversubscribe --bind-to "${CREW_TEST_BIND:-none}" -np "$np" "$@"
