#!/usr/bin/env bash
# The whole loop on the embedded micro-adjustment configuration:
#   1. install what is missing (scripts/bootstrap.sh);
#   2. start `microbandit serve` with the embedded example configuration on
#      127.0.0.1, a free port and a temporary data directory;
#   3. drive the micro-adjustment scenario through gRPC (with the uniform,
#      baseline and oracle references and the served policy's in-process
#      replica for comparison);
#   4. stop the server with SIGTERM and wait for its final checkpoint;
#   5. evaluate the served policy's event log offline against the
#      marketer's rules and a candidate VW configuration;
#   6. print where the plots and the report are.
# The server is stopped on every exit path, including failures and Ctrl-C.
#
# Environment: OUT (default out/demo), ROUNDS per seed (default 2000),
# SEEDS (default 3), START_TIMEOUT seconds (default 240).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-out/demo}"
ROUNDS="${ROUNDS:-2000}"
SEEDS="${SEEDS:-3}"
START_TIMEOUT="${START_TIMEOUT:-240}"
STOP_TIMEOUT=120
POLICY=micro_adjustments

SERVER_PID=""
OWN_SESSION=0
DATA_DIR=""

# Stop the server this script started: SIGTERM to its process id and wait
# for it to exit. Then kill whatever is left of its session: the server runs
# in a session of its own, so that can only be Ray's daemons and workers
# if the server did not stop them.
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    local pid="$SERVER_PID"
    SERVER_PID=""
    if kill -0 "$pid" 2>/dev/null; then
        echo "== stopping the server (SIGTERM to process $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        local waited=0
        while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "$STOP_TIMEOUT" ]; do
            sleep 1
            waited=$((waited + 1))
        done
    fi
    if [ "$OWN_SESSION" = 1 ]; then
        local left
        left="$(ps -o pid= -s "$pid" 2>/dev/null | tr -s ' \n' ' ' || true)"
        if [ -n "${left// /}" ]; then
            echo "processes of the server's session still running; killing:$left" >&2
            # shellcheck disable=SC2086
            kill -KILL $left 2>/dev/null || true
        fi
    elif kill -0 "$pid" 2>/dev/null; then
        echo "the server (process $pid) did not stop within ${STOP_TIMEOUT} s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_server
    if [ -n "$DATA_DIR" ]; then
        rm -rf "$DATA_DIR"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash scripts/bootstrap.sh
PYTHON=.venv/bin/python
MICROBANDIT=.venv/bin/microbandit

rm -rf "$OUT"
mkdir -p "$OUT"
DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/microbandit-demo.XXXXXX")"
SERVER_LOG="$OUT/server.log"

# A gRPC port P with P - 1 (Serve's HTTP health port) and P + 1 .. P + 8
# (the first decider replica ports) free on loopback.
PORT="$("$PYTHON" - <<'EOF'
import socket

def free(port):
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True

for _ in range(200):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    if 1025 < port < 65000 and all(free(p) for p in range(port - 1, port + 9)):
        print(port)
        break
else:
    raise SystemExit("no free block of loopback ports found")
EOF
)"

echo "== starting microbandit serve (embedded configuration, 127.0.0.1:$PORT, data in $DATA_DIR)"
# setsid gives the server a session of its own; its process id is $!.
# Without setsid (not every system has it) the server shares this script's
# session, so the fallback in stop_server can kill only the server process.
if command -v setsid >/dev/null 2>&1; then
    setsid "$MICROBANDIT" serve --port "$PORT" --data-dir "$DATA_DIR" >"$SERVER_LOG" 2>&1 &
    OWN_SESSION=1
else
    "$MICROBANDIT" serve --port "$PORT" --data-dir "$DATA_DIR" >"$SERVER_LOG" 2>&1 &
    OWN_SESSION=0
fi
SERVER_PID=$!
waited=0
until grep -q "microbandit: ready" "$SERVER_LOG"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "the server exited during start-up; its log ($SERVER_LOG) ends with:" >&2
        tail -n 30 "$SERVER_LOG" >&2
        exit 1
    fi
    if [ "$waited" -ge "$START_TIMEOUT" ]; then
        echo "the server was not ready within $START_TIMEOUT s; see $SERVER_LOG" >&2
        exit 1
    fi
    printf '\r   waiting for the server ... %3d s' "$waited"
    sleep 1
    waited=$((waited + 1))
done
printf '\r   server ready after %d s                 \n' "$waited"
# A decider replica's own port (direct ingress) is faster than the proxy.
ADDRESS="$(sed -n 's/^microbandit: gRPC DecisionService on \([^ ]*\) (decider replica.*/\1/p' "$SERVER_LOG" | head -n 1)"
if [ -z "$ADDRESS" ]; then
    ADDRESS="127.0.0.1:$PORT"
fi

echo "== driving the micro-adjustment scenario through gRPC at $ADDRESS ($ROUNDS visitors x $SEEDS seeds)"
"$MICROBANDIT" simulate micro --server "$ADDRESS" \
    --policies "$POLICY,uniform,baseline,oracle" --compare-in-process \
    --rounds "$ROUNDS" --seeds "$SEEDS" --out "$OUT/simulation"

stop_server
mkdir -p "$OUT/served-log"
cp -r "$DATA_DIR/policies/$POLICY/events" "$OUT/served-log/events"

# A candidate configuration: the in-process squarecb preset, which crosses
# only the device and activity namespaces with the actions.
cat >"$OUT/candidate.yaml" <<'EOF'
name: candidate
exploration: {type: squarecb, gamma_scale: 30.0, gamma_exponent: 0.5}
interactions:
  - ["context.device", "action.*"]
  - ["context.activity", "action.*"]
seed: 7
EOF

echo
echo "== evaluating the served policy's log offline"
"$MICROBANDIT" evaluate "$OUT/served-log/events" \
    --target logging \
    --target "rules=baseline:$OUT/simulation/baseline_rules.yaml" \
    --target "candidate=vw:$OUT/candidate.yaml" \
    --estimators ips snips dr --segment device.type \
    --out "$OUT/evaluation"

echo
echo "simulation summary and plots: $OUT/simulation (summary.csv, runner_comparison.csv, *.png)"
echo "offline evaluation report:    $OUT/evaluation/report.md (plots beside it)"
echo "served policy's event log:    $OUT/served-log/events"
echo "server log:                   $SERVER_LOG"
