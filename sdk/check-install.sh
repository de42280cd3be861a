#!/usr/bin/env bash
# Each SDK as a user gets it: a fresh virtual environment installs sdk/python (pip install ./sdk/python),
# a fresh npm project installs sdk/typescript (from its npm pack tarball), and each runs its tour
# (sdk/python/examples/tour.py, sdk/typescript/examples/tour.mjs) against `perilune serve` of this
# checkout in plain demo mode (no provider key; the key from PERILUNE_API_KEY).
#   bash sdk/check-install.sh            (PYTHON: the gateway's interpreter, default .venv/bin/python)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
gateway_py="${PYTHON:-$root/.venv/bin/python}"
work="$(mktemp -d "${TMPDIR:-/tmp}/perilune-sdk-install-XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "== a fresh venv: pip install ./sdk/python"
python3 -m venv "$work/venv"
(cd "$root" && "$work/venv/bin/pip" install -q --disable-pip-version-check ./sdk/python)
cp "$root/sdk/python/examples/tour.py" "$work/tour.py"

echo "== a fresh npm project: npm install the npm pack tarball of sdk/typescript"
tarball="$(cd "$root/sdk/typescript" && npm pack --silent --pack-destination "$work" | tail -1)"
mkdir "$work/app"
(cd "$work/app" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund "$work/$tarball")
cp "$root/sdk/typescript/examples/tour.mjs" "$work/app/tour.mjs"

echo "== both tours against perilune serve (demo mode)"
cd "$root"
"$gateway_py" sdk/testbed.py --plain -- sh -c \
  'cd "$0" && echo "-- python" && ./venv/bin/python tour.py && echo "-- typescript" && cd app && node tour.mjs' "$work"
