#!/bin/sh
# mpirun.sh NP PROGRAM [ARGS...] -- run PROGRAM on NP ranks of this machine
# with Open MPI, as every MPI test does.  More ranks than cores need
# --oversubscribe; root needs Open MPI's explicit permission; the shared
# memory transport (vader) with ob1 starts fast and prints no warnings
# about transports this machine lacks.
set -eu
np=$1
shift
mpirun=$(command -v mpirun.openmpi || command -v mpirun)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
exec timeout 240 "$mpirun" --oversubscribe -np "$np" "$@"
