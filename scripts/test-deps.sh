#!/usr/bin/env bash
# System packages the test suite needs beyond Python: Debian's chromium for the dashboard's browser
# tests. Installed only when missing (needs root or sudo, as on the project's machines).
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing chromium for the browser tests (apt-get)..."
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
