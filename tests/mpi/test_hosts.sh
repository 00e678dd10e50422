# Description: MPI over two hosts, simulated on one machine: crew's
# broadcast of the snapshot to another node's leader, and `crew run --mpi`
# with ranks on both hosts, where only host A has the data.
#
# Each host is a network namespace (a veth pair between them, addresses
# 10.187.0.1 and .2) whose processes have a host name of their own (a UTS
# namespace: Open MPI tells nodes apart by name).  mpirun runs on host A
# and starts its daemon on host B through a remote shell of our own
# (rsh.sh below, given to Open MPI as plm_rsh_agent), as it would with
# ssh; that daemon and its ranks live in a mount namespace with a tmpfs
# over the directory that holds the snapshots, so host B cannot read them.
# Ranks talk over TCP between the hosts, shared memory within one.
#
# Run as `sh test_hosts.sh CREW TESTPLUG_SO BUILD_DIR MKSNAP MPIRUN_SH
# HOSTS_DATA` (MPIRUN_SH is tests/mpi/mpirun.sh, HOSTS_DATA the program
# tests/mpi/hosts_data.c).  Needs root, ip(8) from iproute2 and unshare(1);
# skips (77) without them.  Every namespace and file it makes is removed
# at exit, also when it fails.
set -eu

skip() {
    echo "SKIP: $*" >&2
    exit 77
}
[ "$(id -u)" = 0 ] || skip "two simulated hosts need root (network namespaces)"
command -v ip >/dev/null 2>&1 || skip "no ip(8) (iproute2) for network namespaces"
command -v unshare >/dev/null 2>&1 || skip "no unshare(1) (util-linux)"

# The crew run tests' helpers (and runcheck.py, beside them).
CLI_DIR=$(cd "$(dirname "$0")/../cli" && pwd)
. "$CLI_DIR/lib.sh"
[ $# -ge 6 ] || fail "usage: sh $0 CREW TESTPLUG_SO BUILD_DIR MKSNAP MPIRUN_SH HOSTS_DATA"
MPIRUN=$5
HOSTS_DATA=$6

# ---- the two hosts --------------------------------------------------------------

A=crew-a-$$
B=crew-b-$$
IP_A=10.187.0.1
IP_B=10.187.0.2
NET=10.187.0.0/24
HIDE=$T/hide   # the snapshots' directory: on host A only

cleanup() {
    for ns in $A $B; do
        if ip netns pids "$ns" >/dev/null 2>&1; then
            # Whatever still runs there is ours (mpirun's daemon, ranks).
            pids=$(ip netns pids "$ns")
            [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
            ip netns delete "$ns" || echo "test_hosts: cannot delete namespace $ns" >&2
        fi
    done
    rm -rf "$T"
}
trap cleanup EXIT

ip netns add "$A" 2>"$T/ns.err" || skip "cannot make a network namespace: $(cat "$T/ns.err")"
ip netns add "$B" || fail "cannot make a second network namespace"
# The veth pair is made inside the namespaces: nothing appears on the machine's own network.
ip link add veth-a netns "$A" type veth peer name veth-b netns "$B" ||
    fail "cannot make a veth pair between $A and $B"
ip -n "$A" addr add "$IP_A/24" dev veth-a
ip -n "$B" addr add "$IP_B/24" dev veth-b
for ns_dev in "$A veth-a" "$B veth-b"; do
    set -- $ns_dev
    ip -n "$1" link set lo up
    ip -n "$1" link set "$2" up
done

# Open MPI's remote shell: `rsh.sh HOST COMMAND...` runs COMMAND (one
# shell command line, as ssh passes it on) on HOST.  On host B the
# snapshots' directory is an empty tmpfs, or holds a copy of
# $CREW_TEST_HOSTB_SRC named $CREW_TEST_HOSTB_NAME when they are set.
# (mpirun's environment reaches the ranks through it, as it would not
# through ssh: the sanitizers' options among it.)
cat >"$T/rsh.sh" <<EOF
#!/bin/sh
host=\$1
shift
case \$host in
$IP_A) ns=$A hide= ;;
$IP_B) ns=$B hide=$HIDE ;;
*) echo "rsh.sh: no host \$host" >&2; exit 255 ;;
esac
exec ip netns exec "\$ns" unshare --uts --mount sh -c '
    hostname "\$1" || exit 99
    if [ -n "\$2" ]; then
        mount -t tmpfs none "\$2" || exit 99
        [ -z "\${CREW_TEST_HOSTB_SRC:-}" ] ||
            cp "\$CREW_TEST_HOSTB_SRC" "\$2/\$CREW_TEST_HOSTB_NAME" || exit 99
    fi
    exec sh -c "\$3"' sh "\$ns" "\$hide" "\$*"
EOF
chmod +x "$T/rsh.sh"
printf '%s slots=2\n%s slots=2\n' "$IP_A" "$IP_B" >"$T/hostfile"

# on_hosts ARGS...: mpirun.sh -np 4 ARGS... run from host A, ranks 0 and 1
# on host A, 2 and 3 on host B.  TCP between the hosts, on the veth only.
on_hosts() {
    ip netns exec "$A" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$A" \
        sh "$MPIRUN" 4 --hostfile "$T/hostfile" --mca plm_rsh_agent "$T/rsh.sh" \
        --mca btl self,vader,tcp --mca btl_tcp_if_include "$NET" \
        --mca oob_tcp_if_include "$NET" "$@"
}

mkdir "$HIDE"

# ---- crew_mpi_data_open over two nodes ----------------------------------------------

# A snapshot over 64 MiB, so that the bytes travel to host B's leader in
# more than one piece; another one at the same path on host B is not the
# root's snapshot.
"$MKSNAP" "$HIDE/big.crew" 70000000 || fail "mksnap big.crew"
"$MKSNAP" "$T/other.crew" 5000 || fail "mksnap other.crew"

# same_lines GOT WANT WHAT: as same, showing the lines that differ.
same_lines() {
    cmp -s "$1" "$2" || {
        diff "$2" "$1" >&2 || true
        fail "$3: not what was expected (diff above: < expected, > got)"
    }
}

# want_data BCAST_A BCAST_B: what hosts_data must say over big.crew, from
# the file itself: the arena's bytes are the file's from data_offset
# (docs/SNAPSHOT.md); two nodes, led by ranks 0 and 2; one copy on each.
want_data() {
    python3 - "$HIDE/big.crew" "$A" "$B" "$1" "$2" <<'EOF'
import struct, sys, zlib
path, host_a, host_b, bcast_a, bcast_b = sys.argv[1:]
with open(path, "rb") as f:
    blob = f.read()
data_offset, data_size = struct.unpack_from("<QQ", blob, 24)
data = blob[data_offset:]
assert len(data) == data_size > 64 << 20
print("nodes 2")
for rank in range(4):
    host, leader, bcast = (host_a, 0, bcast_a) if rank < 2 else (host_b, 2, bcast_b)
    print("%d %s node %d broadcast %s size %d crc %08x copies 1"
          % (rank, host, leader, bcast, len(data), zlib.crc32(data)))
EOF
}

# data_case WHAT BCAST_A BCAST_B [verify]: hosts_data over big.crew.
data_case() {
    what=$1
    want_data "$2" "$3" >"$T/data.want"
    shift 3
    on_hosts "$HOSTS_DATA" "$HIDE/big.crew" "$@" >"$T/data.out" 2>"$T/data.err" ||
        fail "hosts_data, $what: exit $?: $(tail -n 5 "$T/data.err")"
    same_lines "$T/data.out" "$T/data.want" "hosts_data, $what"
}

note "the data on host A only: host B's leader is sent the bytes"
data_case "host B without the file" 0 1
data_case "host B without the file, verified" 0 1 verify
note "host B's copy is another snapshot: sent the root's"
CREW_TEST_HOSTB_SRC=$T/other.crew CREW_TEST_HOSTB_NAME=big.crew \
    data_case "host B with another snapshot" 0 1
note "host B has the same file: no broadcast anywhere"
cp "$HIDE/big.crew" "$T/same.crew"
CREW_TEST_HOSTB_SRC=$T/same.crew CREW_TEST_HOSTB_NAME=big.crew \
    data_case "host B with the same file" 0 0 verify
rm -f "$T/same.crew"

note "the root's file missing: the same error on every rank of both hosts"
CREW_TEST_HOSTB_SRC=$T/other.crew CREW_TEST_HOSTB_NAME=nope.crew \
    on_hosts "$HOSTS_DATA" "$HIDE/nope.crew" >"$T/data.out" 2>"$T/data.err" ||
    fail "hosts_data, no file: exit $?: $(tail -n 5 "$T/data.err")"
{
    echo "nodes 2"
    for r in 0 1 2 3; do
        h=$A
        l=0
        [ $r -lt 2 ] || { h=$B; l=2; }
        echo "$r $h node $l error CREW_ENOENT"
    done
} >"$T/data.want"
same_lines "$T/data.out" "$T/data.want" "hosts_data, the root's file missing"
rm -f "$HIDE/big.crew" "$T/other.crew"

# ---- crew run --mpi over two hosts -------------------------------------------------

mv "$DATA" "$HIDE/data.crew"
DATA=$HIDE/data.crew

# Tasks with a model (runcheck.py): outputs from a few bytes to 2 MB (a
# process pool spools those over 16 KiB), and datasum, which reads the
# whole snapshot.  Tasks that show where they ran: hostname (host names
# differ from a single-node run's by design), whoami, and datasum beside
# them.
python3 - "$T/mix.tasks" "$T/where.tasks" <<'EOF'
import sys
sizes = [10000, 16383, 16385, 70000, 2000000, 300000]
with open(sys.argv[1], "w") as f:
    for i in range(1, 801):
        if i % 97 == 50:
            f.write("big %d\n" % sizes[i % len(sizes)])
        elif i % 13 == 5:
            f.write("datasum\n")
        elif i % 3 == 0:
            f.write("square %d %d\n" % (i, i % 7 * 200))
        else:
            f.write("echo e%d\n" % i)
with open(sys.argv[2], "w") as f:
    for i in range(1, 401):
        f.write(("hostname\n", "whoami 2000\n", "datasum\n", "echo %d\n" % i)[i % 4])
EOF
$CHECK expect tsv "$T/mix.tasks" "$DATA" >"$T/mix.want"
# datasum's record, from the file: "SIZE SUM" of the arena's bytes.
datasum=$(python3 -c '
import sys
sys.path.insert(0, sys.argv[1])
import runcheck
data, _ = runcheck.read_snapshot(sys.argv[2])
print(len(data), sum(data))' "$CLI_DIR" "$DATA")

# crew_lines FILE: crew's own messages (mpirun's are around them).
crew_lines() {
    grep '^crew' "$1" || true
}

for iso in threads processes; do
    note "crew run --mpi, 2 ranks on each host, $iso"
    expect_rc 0 run -j 2 --isolation $iso "$T/mix.tasks" >"$T/mix.ref"
    same "$T/mix.ref" "$T/mix.want" "single-node run, $iso"
    on_hosts "$CREW" run --mpi --plugin "$PLUG" --data "$DATA" -j 2 --isolation $iso \
        "$T/mix.tasks" >"$T/mix.out" 2>"$T/mpi.err" ||
        fail "$iso: crew run --mpi exited $?: $(tail -n 5 "$T/mpi.err")"
    same "$T/mix.out" "$T/mix.ref" "$iso: over two hosts"
    [ -z "$(crew_lines "$T/mpi.err")" ] || fail "$iso: messages: $(crew_lines "$T/mpi.err")"

    expect_rc 0 run -j 2 --isolation $iso "$T/where.tasks" >"$T/where.ref"
    on_hosts "$CREW" run --mpi --plugin "$PLUG" --data "$DATA" -j 2 --isolation $iso \
        "$T/where.tasks" >"$T/where.out" 2>"$T/mpi.err" ||
        fail "$iso: crew run --mpi exited $?: $(tail -n 5 "$T/mpi.err")"
    [ "$(lines "$T/where.out")" = 400 ] || fail "$iso: $(lines "$T/where.out") records, want 400"
    # all but hostname and whoami: the same bytes as on one node
    awk -F'\t' '$2 != "hostname" && $2 != "whoami"' "$T/where.ref" >"$T/where.want"
    awk -F'\t' '$2 != "hostname" && $2 != "whoami"' "$T/where.out" >"$T/where.got"
    same "$T/where.got" "$T/where.want" "$iso: over two hosts, where.tasks"
    # every datasum read the root's snapshot, on whichever host it ran
    awk -F'\t' '$2 == "datasum" { print $6 }' "$T/where.out" | sort -u >"$T/sums"
    echo "$datasum" >"$T/sums.want"
    same "$T/sums" "$T/sums.want" "$iso: datasum over two hosts"
    # the tasks ran on both hosts, and on more than one process
    awk -F'\t' '$2 == "hostname" { print $6 }' "$T/where.out" | sort -u >"$T/hosts"
    printf '%s\n%s\n' "$A" "$B" | sort >"$T/hosts.want"
    same "$T/hosts" "$T/hosts.want" "$iso: the hosts that ran tasks"
    npids=$(awk -F'\t' '$2 == "whoami" { split($6, w, " "); print w[1] }' "$T/where.out" |
        sort -u | wc -l | tr -d ' ')
    [ "$npids" -ge 4 ] || fail "$iso: whoami ran in $npids processes, want 4 ranks' at least"
    [ -z "$(crew_lines "$T/mpi.err")" ] || fail "$iso: messages: $(crew_lines "$T/mpi.err")"
done

echo "PASS"
