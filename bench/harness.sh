#!/usr/bin/env bash
# perilune under the neutral gateway benchmark harness (the one the performance issue is checked with;
# it is not part of this repository: HARNESS names its directory, by default ../shared/bench-harness).
#
#   bench/harness.sh [--out DIR] [--stack NAME] [harness options...]   e.g. --latencies "0 20" --concurrencies "1 64"
#
# Starts perilune pinned to core 1 (SQLite, one worker, accounting and recording on, a prepaid
# balance and a real key), model bench-model -> the harness's fake upstream on 127.0.0.1:18000, then
# runs run_gateway_bench.sh with --gateway-pid, which pins its fake upstream and load to core 0.
#
# --stack aiohttp|uvicorn|granian runs one of the bare proxies of bench/stacks/ in perilune's place
# (no auth, no accounting, no recording: what the HTTP stack alone costs), placed the same way.
# granian is not a dependency of perilune: `.venv/bin/pip install granian` first.
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS="${HARNESS:-../shared/bench-harness}"
PY="${PY:-.venv/bin/python}"
PORT="${PORT:-18787}"
OUT="bench/results/harness-$(date -u +%Y%m%dT%H%M%SZ)"
STACK=""
while [[ "${1:-}" == "--out" || "${1:-}" == "--stack" ]]; do
  if [[ "$1" == "--out" ]]; then OUT="$2"; else STACK="$2"; fi
  shift 2
done
[[ -x "$HARNESS/run_gateway_bench.sh" ]] || { echo "no harness at $HARNESS (set HARNESS)" >&2; exit 2; }
UPSTREAM=http://127.0.0.1:18000
HOME_DIR="$(mktemp -d /tmp/perilune-harness-XXXX)"
if [[ -n "$STACK" ]]; then
  case "$STACK" in
    aiohttp) CMD=("$PY" -m bench.stacks.aiohttp_lean --port "$PORT" --upstream "$UPSTREAM") ;;
    uvicorn) CMD=("$PY" -m bench.stacks.uvicorn_raw --port "$PORT" --upstream "$UPSTREAM") ;;
    granian) CMD=(env BENCH_UPSTREAM="$UPSTREAM" "$(dirname "$PY")/granian" --interface rsgi --loop uvloop
                  --workers 1 --runtime-threads 1 --port "$PORT" bench.stacks.granian_rsgi:app) ;;
    *) echo "unknown stack $STACK (aiohttp, uvicorn, granian)" >&2; exit 2 ;;
  esac
  KEY=none LABEL="bare-$STACK"
else
  cat > "$HOME_DIR/bench.toml" <<TOML
simulator = "never"
log_level = "warning"
[[providers]]
name = "up"
base_url = "$UPSTREAM/v1"
models = ["bench-model"]
[models.bench-model]
providers = ["up"]
kind = "chat"
price = { input = "0.15", output = "0.60" }
TOML
  export PERILUNE_ADMIN_KEY=bench-admin
  where=(--home "$HOME_DIR" --config "$HOME_DIR/bench.toml")
  KEY="$($PY -m perilune keys create "${where[@]}" | tail -1)"
  ACCOUNT="$($PY -m perilune accounts list "${where[@]}" | awk 'NR==1{print $1}')"
  $PY -m perilune accounts topup "$ACCOUNT" 1000000 "${where[@]}" >/dev/null
  CMD=($PY -m perilune serve "${where[@]}" --port "$PORT") LABEL=perilune
fi
taskset -c 1 "${CMD[@]}" > "$HOME_DIR/gateway.log" 2>&1 &
GW=$!
trap 'kill $GW 2>/dev/null; wait $GW 2>/dev/null; rm -rf "$HOME_DIR"' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
BENCH_PYTHON="$PY" "$HARNESS/run_gateway_bench.sh" --gateway-url "http://127.0.0.1:$PORT" --api-key "$KEY" \
    --model bench-model --gateway-pid "$GW" --label "$LABEL" --out-dir "$OUT" "$@"
cat "$OUT/report.md"
