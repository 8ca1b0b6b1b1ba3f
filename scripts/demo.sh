#!/usr/bin/env bash
# End-to-end demo on the embedded micro-adjustment scenario: simulate the
# policies, log every decision, then evaluate the uniformly random log
# offline against the baseline and a candidate VW configuration.
# NOTE: the simulation runs in-process; driving `microbandit serve` over
# gRPC (simulate --server) is not implemented yet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
OUT="${OUT:-out/demo}"
ROUNDS="${ROUNDS:-4000}"
rm -rf "$OUT"
echo "== simulating the micro-adjustment scenario ($ROUNDS visitors, 2 seeds)"
.venv/bin/microbandit simulate micro --policies uniform,baseline,squarecb,oracle \
    --rounds "$ROUNDS" --seeds 2 --log-events --out "$OUT/simulation"
echo
echo "== evaluating the uniformly random log offline"
.venv/bin/microbandit evaluate "$OUT/simulation/logs/uniform/seed-0/events" \
    --target logging --target baseline --target "candidate=vw-args:--learning_rate 0.5" \
    --out "$OUT/evaluation"
echo
echo "simulation results and plots: $OUT/simulation"
echo "offline evaluation report:    $OUT/evaluation/report.md"
