#!/usr/bin/env bash
# `make clients`: the client matrix. Installs the Python frameworks (the `clients` extra) and the Node
# clients (npm registry, into clients/node_modules), starts the simulator and a gateway in front of its
# three personalities (OpenAI as a provider of type "openai", Anthropic, Gemini), and runs:
#   1. the Python client tests (tests/integration/test_clients_*.py: LangChain, litellm, OpenAI Agents SDK),
#   2. clients/matrix.mjs (openai-node, @anthropic-ai/sdk, Vercel AI SDK with its default openai(model)),
#   3. Claude Code (`claude -p`, thinking on, a tool round trip) against each personality.
# Prints one line per case and a summary; exits non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODELS=${PERILUNE_MODELS:-sim-gpt,sim-claude,sim-gemini}
fail=0

echo "== installing the clients"
$PY -m pip install -q -e '.[test,clients]' || exit 1
npm install --prefix clients --no-audit --no-fund --loglevel=error || exit 1

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SIM_PORT=$(free_port); GW_PORT=$(free_port)
$PY -m perilune sim --port "$SIM_PORT" >"$work/sim.log" 2>&1 & pids+=($!)
cat >"$work/perilune.toml" <<TOML
simulator = "never"
log_level = "warning"
[[providers]]
name = "sim"
type = "openai"
base_url = "http://127.0.0.1:$SIM_PORT/v1"
[[providers]]
name = "sim-anthropic"
type = "anthropic"
base_url = "http://127.0.0.1:$SIM_PORT"
[[providers]]
name = "sim-gemini"
type = "gemini"
base_url = "http://127.0.0.1:$SIM_PORT"
TOML
P=(--home "$work/home" --config "$work/perilune.toml")
KEY=$($PY -m perilune keys create "${P[@]}" | tail -1)
ACCOUNT=$($PY -m perilune accounts list "${P[@]}" | head -1 | cut -f1)
$PY -m perilune accounts topup "$ACCOUNT" 100 "${P[@]}" >/dev/null
$PY -m perilune serve "${P[@]}" --port "$GW_PORT" >"$work/gw.log" 2>&1 & pids+=($!)
URL="http://127.0.0.1:$GW_PORT"
for _ in $(seq 100); do curl -sf "$URL/health" >/dev/null && break; sleep 0.2; done

echo "== Python clients (pytest)"
PERILUNE_TEST_REDIS_URL=${PERILUNE_TEST_REDIS_URL:-} $PY -m pytest -q -p no:warnings tests/integration/test_clients_*.py \
  || fail=1

echo "== Node clients"
PERILUNE_URL=$URL PERILUNE_KEY=$KEY PERILUNE_MODELS=$MODELS node clients/matrix.mjs || fail=1

echo "== Claude Code"
CLAUDE=(node "$PWD/clients/node_modules/@anthropic-ai/claude-code/cli-wrapper.cjs")
echo "claude $("${CLAUDE[@]}" --version 2>&1 | head -1)"
mkdir -p "$work/cc-home" "$work/cc-repo"
for model in ${MODELS//,/ }; do
  out=$(cd "$work/cc-repo" && HOME="$work/cc-home" ANTHROPIC_BASE_URL=$URL ANTHROPIC_API_KEY=$KEY \
        ANTHROPIC_MODEL=$model ANTHROPIC_SMALL_FAST_MODEL=$model ANTHROPIC_DEFAULT_HAIKU_MODEL=$model \
        MAX_THINKING_TOKENS=4096 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 \
        timeout 180 "${CLAUDE[@]}" -p "Use a tool to check the weather, then answer." --output-format json \
        --allowedTools Read 2>&1)
  verdict=$(printf '%s' "$out" | $PY clients/claude_verdict.py)
  echo "claude-code | claude -p, thinking, tool round trip | $model | $verdict"
  [[ $verdict == PASS* ]] || fail=1
done

echo "== $([ $fail = 0 ] && echo 'all clients passed' || echo 'some clients FAILED')"
exit $fail
