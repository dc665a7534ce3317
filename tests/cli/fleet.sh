#!/usr/bin/env bash
# Redis's own tools against a real fleet (issue 6): `prism cluster up` starts three shards
# of three `prism` processes on a random free port range; then
#   - redis-cli --cluster check passes,
#   - redis-cli -c writes and reads keys in all three shards (and hash-tagged MSET/MGET),
#   - redis-benchmark --cluster -t set,get completes with no errors,
#   - after SIGKILL of one shard's leader, redis-cli -c still reads every key written
#     before (a bounded retry loop while the shard elects a new leader),
# and `prism cluster down` stops the fleet at the end, also on failure (trap).
#
# Every check runs even when an earlier one failed; the last line is
# "cli-fleet: N passed, N failed" and the exit status is non-zero if anything failed.
# Every client call is bounded by `timeout`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${PRISM_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/prism}
T=60 # seconds any one client call may take
NODES=9

for tool in redis-cli redis-benchmark python3; do
    command -v "$tool" >/dev/null || { echo "cli-fleet: $tool is not installed" >&2; exit 2; }
done
[[ -x $BIN ]] || { echo "cli-fleet: $BIN does not exist: run cargo build --workspace first" >&2; exit 2; }

WORK=$(mktemp -d)
DIR=
cleanup() {
    if [[ -n $DIR && -d $DIR ]]; then
        local pids=()
        for f in "$DIR"/node-*.pid; do [[ -f $f ]] && pids+=("$(<"$f")"); done
        timeout 30 "$BIN" cluster down --dir "$DIR" >/dev/null 2>&1 || true
        # Anything still a node of this fleet (pids get reused: check the command line).
        for pid in "${pids[@]}"; do
            if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DIR"; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# True unless one of the client ports base..base+8, their peer ports (+10000) or their
# admin ports (+20000) is taken. Only a failed bind says "taken" (exit 3): a python3 that
# cannot run does not turn every attempt into a skip. SO_REUSEADDR as the node sets it: a
# port whose last connection is in TIME_WAIT is free for a listener (without it, after
# the test suite's thousands of connections, every attempt looked taken).
ports_free() {
    local rc=0
    python3 - "$1" "$NODES" <<'EOF' || rc=$?
import socket, sys
base, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for off in (0, 10000, 20000):
    for p in range(base + off, base + off + n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.append(s)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            sys.exit(3)
EOF
    ((rc != 3))
}

# Every port of the fleet (up to base + 20008) below the kernel's ephemeral range, where
# outgoing connections take their ports: base in 1100..(first ephemeral - 20000 - 9).
read -r EPHEMERAL_LO _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || EPHEMERAL_LO=32768
BASE_SPAN=$((EPHEMERAL_LO - 20000 - NODES - 1100))
((BASE_SPAN > 100)) || BASE_SPAN=100

up() {
    local attempt
    for attempt in 1 2 3 4 5; do
        BASE=$((1100 + RANDOM % BASE_SPAN))
        if ! ports_free "$BASE"; then
            echo "cli-fleet: attempt $attempt: a port of $BASE.. is taken"
            continue
        fi
        DIR=$WORK/fleet-$attempt
        if timeout 180 "$BIN" cluster up --shards 3 --replicas 2 --base-port "$BASE" --dir "$DIR" -- --threads 1 \
            >"$WORK/up.out" 2>&1; then
            return 0
        fi
        # On stdout, so that CI's summary of a failed step (its last lines) shows why.
        echo "cli-fleet: attempt $attempt: prism cluster up --base-port $BASE failed:"
        sed 's/^/  | /' "$WORK/up.out"
        timeout 30 "$BIN" cluster down --dir "$DIR" >/dev/null 2>&1 || true
        sleep 1
    done
    echo "cli-fleet: prism cluster up failed after $attempt attempts"
    exit 1
}

PASSED=0
FAILED=0
check() {
    if [[ $2 == "$3" ]]; then
        PASSED=$((PASSED + 1))
        echo "ok   $1"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL $1"
        echo "  expected: $(printf '%q' "$2")"
        echo "  actual:   $(printf '%q' "$3")"
    fi
}
check_match() {
    if grep -Eq -- "$2" <<<"$3"; then
        PASSED=$((PASSED + 1))
        echo "ok   $1"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL $1: output does not match /$2/"
        sed 's/^/  | /' <<<"$3"
    fi
}
port() { echo $((BASE + $1 - 1)); }
# redis-cli -c against node $1 (default: node 1).
cli_at() {
    local node=$1
    shift
    timeout "$T" redis-cli -p "$(port "$node")" "$@" 2>&1 || echo "(exit $?)"
}
cli() { cli_at 1 "$@"; }
# The node of shard $1 whose INFO raft says role:leader (empty if none answers so).
leader_of() {
    local n
    for n in $(seq $((($1 - 1) * 3 + 1)) $(($1 * 3))); do
        if timeout 5 redis-cli -p "$(port "$n")" INFO raft 2>/dev/null | tr -d '\r' | grep -qx 'role:leader'; then
            echo "$n"
            return
        fi
    done
}

up
echo "cli-fleet: 9 nodes on 127.0.0.1:$BASE-$((BASE + 8)) in $DIR"

check_match "redis-cli --cluster check" '\[OK\] All 16384 slots covered' \
    "$(timeout "$T" redis-cli --cluster check "127.0.0.1:$BASE" 2>&1 || echo "(exit $?)")"
check_match "redis-cli --cluster check: 3 masters" '\[OK\] [0-9]+ keys in 3 masters' \
    "$(timeout "$T" redis-cli --cluster check "127.0.0.1:$BASE" 2>&1 || echo "(exit $?)")"
check "CLUSTER NODES: 3 masters, 6 replicas" "3 6" \
    "$(cli CLUSTER NODES | awk '$3 ~ /master/ {m++} $3 ~ /slave/ {s++} END {print m+0, s+0}')"

# 60 keys over the whole slot range; their shards come from CLUSTER KEYSLOT.
keys=()
for i in $(seq 1 60); do keys+=("fleet:key:$i"); done
shards=
set_out=
for k in "${keys[@]}"; do
    slot=$(cli CLUSTER KEYSLOT "$k")
    shards+="$((slot <= 5460 ? 1 : slot <= 10922 ? 2 : 3))"$'\n'
    set_out+="$(cli -c SET "$k" "v-$k") "
done
check "keys fall in all 3 shards" "1 2 3" "$(sort -u <<<"$shards" | grep . | tr '\n' ' ' | sed 's/ $//')"
check "redis-cli -c SET in all shards" "$(printf 'OK %.0s' "${keys[@]}")" "$set_out"
# Read each key through a node of another shard, so every GET follows a -MOVED.
get_out=
for k in "${keys[@]}"; do get_out+="$(cli_at 5 -c GET "$k") "; done
check "redis-cli -c GET in all shards" "$(printf 'v-%s ' "${keys[@]}")" "$get_out"
check "redis-cli -c MSET/MGET with a hash tag" "OK a b c" \
    "$(cli -c MSET '{fleet:t}:a' a '{fleet:t}:b' b '{fleet:t}:c' c) $(cli -c MGET '{fleet:t}:a' '{fleet:t}:b' '{fleet:t}:c' | tr '\n' ' ' | sed 's/ $//')"
check_match "MGET across shards answers CROSSSLOT" '^CROSSSLOT ' "$(cli MGET fleet:key:1 fleet:key:2 fleet:key:3 fleet:key:4)"

bench=$(timeout 300 redis-benchmark --cluster -p "$BASE" -t set,get -n 20000 -q 2>&1 || echo "(exit $?)")
bench=$(tr '\r' '\n' <<<"$bench")
check_match "redis-benchmark --cluster sees 3 masters" '^Cluster has 3 master nodes' "$bench"
check_match "redis-benchmark --cluster SET" '^SET: [0-9.]+ requests per second' "$bench"
check_match "redis-benchmark --cluster GET" '^GET: [0-9.]+ requests per second' "$bench"
check "redis-benchmark --cluster reports no errors" "" "$(grep -Ei 'error|exit [0-9]' <<<"$bench" || true)"
grep -E '^(SET|GET): [0-9.]+ requests' <<<"$bench" | sed 's/^/     /'

# SIGKILL the leader of shard 2; node 1 (shard 1) is the entry point throughout.
victim=$(leader_of 2)
check_match "shard 2 has a leader" '^[4-6]$' "$victim"
if [[ -n $victim ]]; then
    kill -KILL "$(<"$DIR/node-$victim.pid")"
    echo "     killed node $victim (leader of shard 2)"
    # Every key written before: read until it answers, at most 30 tries of 0.5 s per key
    # (the first keys of shard 2 wait for the election; the rest answer at once).
    wrong=
    for k in "${keys[@]}"; do
        got=
        for _ in $(seq 1 30); do
            got=$(timeout 10 redis-cli -p "$BASE" -c GET "$k" 2>&1 || true)
            [[ $got == "v-$k" ]] && break
            # Only a refused connection or a -MOVED/-TRYAGAIN/-CLUSTERDOWN to a dead
            # node may be retried; any other answer is wrong at once.
            grep -Eq '^(Could not connect|Error: |MOVED|TRYAGAIN|CLUSTERDOWN|$)' <<<"$got" || break
            sleep 0.5
        done
        [[ $got == "v-$k" ]] || wrong+="$k=$(printf '%q' "$got") "
    done
    check "redis-cli -c reads every key after the leader SIGKILL" "" "$wrong"
    new=$(leader_of 2)
    check_match "shard 2 elected a new leader" "^[4-6]$" "$new"
    check "the new leader is another node" "yes" "$([[ -n $new && $new != "$victim" ]] && echo yes || echo "no: $new")"
    check "redis-cli -c SET into shard 2 after the failover" "OK" "$(cli -c SET fleet:key:3 again)"
    check "redis-cli -c GET it back" "again" "$(cli_at 9 -c GET fleet:key:3)"
fi

# Resharding online with redis-cli's own flow (SETSLOT IMPORTING/MIGRATING, MIGRATE,
# SETSLOT NODE), then back with prism cluster reshard, then rebalance.
tag=
for i in $(seq 0 2000); do
    if (($(cli CLUSTER KEYSLOT "m$i") < 200)); then tag="m$i"; break; fi
done
for i in $(seq 1 50); do cli -c SET "{$tag}:$i" "w$i" >/dev/null; done
l1=$(leader_of 1)
l3=$(leader_of 3)
from=$(cli_at "$l1" CLUSTER MYID)
to=$(cli_at "$l3" CLUSTER MYID)
reshard=$(timeout 300 redis-cli --cluster reshard "127.0.0.1:$(port "$l1")" --cluster-from "$from" \
    --cluster-to "$to" --cluster-slots 200 --cluster-yes 2>&1 || echo "(exit $?)")
check "redis-cli --cluster reshard moves 200 slots" "200" "$(grep -c '^Moving slot' <<<"$reshard")"
check "redis-cli --cluster reshard reports no errors" "" "$(grep -Ei 'ERR|exit [0-9]' <<<"$reshard" || true)"
slot=$(cli CLUSTER KEYSLOT "{$tag}:1")
check "shard 1 redirects the moved slot to shard 3" "MOVED $slot 127.0.0.1:$(port "$l3")" \
    "$(cli_at "$l1" GET "{$tag}:1")"
check "its keys moved with it" "50 0" \
    "$(cli_at "$l3" CLUSTER COUNTKEYSINSLOT "$slot") $(cli_at "$l1" CLUSTER COUNTKEYSINSLOT "$slot")"
moved_out=
for i in $(seq 1 50); do moved_out+="$(cli -c GET "{$tag}:$i") "; done
check "redis-cli -c reads every moved key" "$(for i in $(seq 1 50); do printf 'w%s ' "$i"; done)" "$moved_out"
check_match "redis-cli --cluster check after the reshard" '\[OK\] All 16384 slots covered' \
    "$(timeout "$T" redis-cli --cluster check "127.0.0.1:$BASE" 2>&1 || echo "(exit $?)")"
back=$(timeout 300 "$BIN" cluster reshard --dir "$DIR" --slots 0-199 --to 1 2>&1 || echo "(exit $?)")
check_match "prism cluster reshard moves them back" '^200/200 slots served by shard 1' "$(tail -1 <<<"$back")"
check "the keys are back on shard 1" "50" "$(cli_at "$(leader_of 1)" CLUSTER COUNTKEYSINSLOT "$slot")"
check_match "prism cluster rebalance" '(balanced|slots served)' \
    "$(timeout 300 "$BIN" cluster rebalance --dir "$DIR" 2>&1 | tail -1 || echo "(exit $?)")"

status=$(timeout "$T" "$BIN" cluster status --dir "$DIR" 2>&1 || echo "(exit $?)")
check "prism cluster status: 3 shards with a leader" "3" \
    "$(awk 'NR > 1 && $3 ~ /^[0-9]+$/ {n++} END {print n+0}' <<<"$status")"

timeout 30 "$BIN" cluster down --dir "$DIR" >"$WORK/down.out" 2>&1 || true
check_match "prism cluster down" '^stopped [0-9]+ nodes' "$(cat "$WORK/down.out")"
left=
for f in "$DIR"/node-*.log; do
    n=${f##*/node-}
    n=${n%.log}
    timeout 2 redis-cli -p "$(port "$n")" PING >/dev/null 2>&1 && left+="$n "
done
check "no node answers after cluster down" "" "$left"
DIR=

echo "cli-fleet: $PASSED passed, $FAILED failed"
((FAILED == 0))
