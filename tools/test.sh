#!/usr/bin/env bash
# Runs every Edgewise test: deno lint, the sidecar's Deno tests (unit, doc examples, browser end-to-end)
# and the Python client's pytest suite (unit, doctests, live client <-> sidecar tests).
# Sets up first (idempotent), so it works on a fresh clone. Ends with "edgewise: N passed, N failed".
#   tools/test.sh            all tests
#   tools/test.sh --slow     also the slow tier (paper sweep, reduced)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/bootstrap.sh || { echo "edgewise: set-up failed"; exit 1; }

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
status=0

echo "== Deno: lint"
lint=0
NO_COLOR=1 tools/deno lint --quiet sidecar/ tests/e2e/ || { lint=1; status=1; }

echo "== Deno: sidecar tests"
NO_COLOR=1 tools/deno test -A --quiet --doc sidecar/ tests/e2e/ 2>&1 | tee "$logs/deno.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== Python: client tests"
slow=()
[ "${1:-}" = "--slow" ] && slow=(--run-slow)
.venv/bin/python -m pytest -q -p no:cacheprovider --doctest-modules python_client/edgewise tests/python "${slow[@]}" 2>&1 | tee "$logs/py.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

count() { grep -aoE "[0-9]+ $1" "$2" | tail -n 1 | grep -oE '^[0-9]+' || echo 0; }
# Deno prints "ok | 12 passed (34 steps) | 0 failed"; pytest prints "12 passed, 1 failed in 3s".
dp=$(grep -aE '^(ok|FAILED) \|' "$logs/deno.log" | tail -n 1 | grep -oE '[0-9]+ passed' | grep -oE '^[0-9]+' || echo 0)
df=$(grep -aE '^(ok|FAILED) \|' "$logs/deno.log" | tail -n 1 | grep -oE '[0-9]+ failed' | grep -oE '^[0-9]+' || echo 0)
pp=$(count passed "$logs/py.log"); pf=$(count failed "$logs/py.log"); pe=$(count error "$logs/py.log")
passed=$((dp + pp)); failed=$((df + pf + pe + lint))
[ "$failed" -eq 0 ] || status=1
echo "edgewise: deno ${dp} passed, ${df} failed$([ "$lint" -eq 0 ] || echo ", lint failed"); python ${pp} passed, $((pf + pe)) failed"
echo "edgewise: ${passed} passed, ${failed} failed"
exit "$status"
