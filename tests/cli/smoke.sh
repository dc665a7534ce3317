#!/usr/bin/env bash
# Smoke tests with Redis's own command-line tools (redis-cli, redis-benchmark) and a raw
# socket against the real `prism` binary: one node on a free loopback port with a fresh
# data directory, stopped with SIGTERM at the end (it must exit 0).
#
# Every check runs even when an earlier one failed; the last line is
# "cli: N passed, N failed" and the exit status is non-zero if anything failed.
# Every client call is bounded by `timeout`, so a hung server fails the check instead of
# hanging the run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${PRISM_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/prism}
T=60 # seconds any one client call may take

for tool in redis-cli redis-benchmark python3; do
    command -v "$tool" >/dev/null || { echo "cli: $tool is not installed" >&2; exit 2; }
done
[[ -x $BIN ]] || { echo "cli: $BIN does not exist: run cargo build --workspace first" >&2; exit 2; }

WORK=$(mktemp -d)
PID=
cleanup() {
    if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Starts prism on a free port; retries if another process took the port first.
start_prism() {
    local attempt
    for attempt in 1 2 3 4 5; do
        PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        "$BIN" --port "$PORT" --data-dir "$WORK/data" "$@" </dev/null >/dev/null 2>"$WORK/stderr" &
        PID=$!
        local waited=0
        while ((waited < 300)); do
            grep -qs "serving on" "$WORK/stderr" && return 0
            kill -0 "$PID" 2>/dev/null || break
            sleep 0.1
            waited=$((waited + 1))
        done
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=
        grep -qs "cannot listen" "$WORK/stderr" || break
    done
    echo "cli: prism did not start (attempt $attempt):" >&2
    cat "$WORK/stderr" >&2
    exit 1
}

PASSED=0
FAILED=0
# check NAME EXPECTED ACTUAL
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
# check_match NAME EXTENDED-REGEX ACTUAL
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
cli() { timeout "$T" redis-cli -p "$PORT" "$@" 2>&1 || echo "(exit $?)"; }

start_prism
echo "cli: prism pid $PID on 127.0.0.1:$PORT"

check "redis-cli PING" "PONG" "$(cli PING)"
check "redis-cli SET" "OK" "$(cli SET cli:k hello)"
check "redis-cli GET" "hello" "$(cli GET cli:k)"
# Without a terminal redis-cli prints error replies bare, with no "(error)" prefix.
check "redis-cli error reply" "ERR unknown command 'NOPE', with args beginning with: 'x' " "$(cli NOPE x)"

# -c follows redirections; these keys hash to slots spread over the whole range
# (CRC16/XMODEM mod 16384, computed independently of the server).
keys=(alpha beta gamma delta epsilon zeta eta theta)
slots="15191 1341 12691 7019 14787 7001 512 14374 "
set_out=
get_out=
for k in "${keys[@]}"; do
    set_out+="$(cli -c SET "cli:$k" "v-$k") "
    get_out+="$(cli -c GET "cli:$k") "
done
check "redis-cli -c SET in many slots" "$(printf 'OK %.0s' "${keys[@]}")" "$set_out"
check "redis-cli -c GET in many slots" "$(printf 'v-%s ' "${keys[@]}")" "$get_out"
check "redis-cli CLUSTER KEYSLOT" "$slots" "$(for k in "${keys[@]}"; do printf '%s ' "$(cli CLUSTER KEYSLOT "cli:$k")"; done)"

# Graph commands through redis-cli -c (routed by the vertex id, the declared key).
check "redis-cli -c E.ADD" "1 1 0" "$(cli -c E.ADD g:alpha knows g:beta RANK 5) $(cli -c E.ADD g:beta knows g:gamma RANK 7) $(cli -c E.ADD g:alpha knows g:beta RANK 6)"
check "redis-cli -c E.COUNT" "1" "$(cli -c E.COUNT g:gamma knows IN)"
check "redis-cli -c E.RANGE" "$(printf '0\ng:beta\n6')" "$(cli -c E.RANGE g:alpha knows)"
check "redis-cli -c G.PATH" "$(printf 'path\ng:alpha\ng:beta\ng:gamma\ntruncated\n')" "$(cli -c G.PATH g:alpha g:gamma)"
check "redis-cli -c TYPE of a vertex" "vertex" "$(cli -c TYPE g:beta)"

check_match "redis-cli --cluster check" '\[OK\] All 16384 slots covered' "$(timeout "$T" redis-cli --cluster check "127.0.0.1:$PORT" 2>&1 || echo "(exit $?)")"

# Inline commands (what telnet users and some health checks send), over a raw socket,
# byte for byte; QUIT makes the server close, which ends the read.
inline=$(
    exec 3<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'PING\r\nSET inline:k "two words"\r\nGET inline:k\r\nQUIT\r\n' >&3
    timeout "$T" cat <&3 | od -An -c | tr -s ' \n' ' '
) || true
expected=$(printf '+PONG\r\n+OK\r\n$9\r\ntwo words\r\n+OK\r\n' | od -An -c | tr -s ' \n' ' ')
check "inline commands over a raw socket" "$expected" "$inline"

bench=$(timeout 300 redis-benchmark -p "$PORT" -t set,get -n 2000 -q 2>&1 || echo "(exit $?)")
check_match "redis-benchmark SET" '^SET: [0-9.]+ requests per second' "$(tr '\r' '\n' <<<"$bench")"
check_match "redis-benchmark GET" '^GET: [0-9.]+ requests per second' "$(tr '\r' '\n' <<<"$bench")"
check "redis-benchmark reports no errors" "" "$(tr '\r' '\n' <<<"$bench" | grep -Ei 'error|exit [0-9]' || true)"

# (redis-benchmark --cluster refuses a cluster of fewer than two nodes, even real Redis's,
# so it has no place in a one-node smoke test.)

check "redis-cli PING after the load" "PONG" "$(cli PING)"

# bash reaps its exited children at once, so `kill -0` fails as soon as prism is gone.
kill -TERM "$PID"
for ((i = 0; i < 300; i++)); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$PID" 2>/dev/null; then
    kill -KILL "$PID"
    status="still running 30 s after SIGTERM"
else
    status=0
fi
wait "$PID" || status=$?
PID=
check "SIGTERM stops prism with exit 0" "0" "$status"

echo "cli: $PASSED passed, $FAILED failed"
((FAILED == 0))
