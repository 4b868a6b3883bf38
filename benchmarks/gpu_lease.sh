#!/usr/bin/env bash
# benchmarks/gpu_round.sh on a bare lent GPU machine: pyzmq from a carried wheel (.gpu/whl/),
# Deno from the carried npm binary (.gpu/deno.xz), the baseline as a carried tar (.gpu/base.tar,
# `git archive REV`); carry .gpu and node_modules. Usage: bash benchmarks/gpu_lease.sh [bench args]
set -euo pipefail
py="${PYTHON:-python3}"
"$py" -c "import zmq" 2>/dev/null || "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
mkdir -p tools/node_modules/deno
"$py" -c "import lzma,shutil; shutil.copyfileobj(lzma.open('.gpu/deno.xz'), open('tools/node_modules/deno/deno','wb'))"
chmod +x tools/node_modules/deno/deno
export PYTHONUNBUFFERED=1
PYTHON="$py" BASELINE="$(pwd)/.gpu/base.tar" bash benchmarks/gpu_round.sh "$@"
