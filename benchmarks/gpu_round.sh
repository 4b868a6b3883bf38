#!/usr/bin/env bash
# Issue 9's GPU measurement: a CIFAR ResNet-18 round against one epoch of its training.
# Run from the repository root on a lent H100/H200 (about 4-7 minutes):
#   bash benchmarks/gpu_round.sh            # writes $OUT/bench_round_gpu.{log,json} (OUT default /tmp)
# Side by side with a baseline revision's ggn route (same model, probe and machine; BASELINE=none
# skips it): BASELINE=527d145 (default), a revision this checkout holds, or a tar made by
# `git archive REV` (for a machine without the history). Extra arguments go to bench_round.py
# (`--smoke --device cpu` checks the path anywhere).
# On a bare lent machine: bash benchmarks/gpu_lease.sh (carries its own setup).
# Needs: a Python with a CUDA build of torch 2.13 plus pyzmq, msgpack, numpy and the client installed
# or on PYTHONPATH (PYTHON=..., default .venv/bin/python); tools/deno working (tools/node_modules
# carried) and the sidecar's npm modules in node_modules/. The sidecar runs on the host CPU.
set -euo pipefail
py="${PYTHON:-.venv/bin/python}"
out="${OUT:-/tmp}"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)/python_client"
"$py" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')"
tools/deno --version | head -n 1
base="${BASELINE:-527d145}"
args=(--gpu --rounds 4 --json "$out/bench_round_gpu.json" "$@")
[ "$base" != none ] && args+=(--baseline "$base")
timeout 540 "$py" benchmarks/bench_round.py "${args[@]}" 2>&1 | tee "$out/bench_round_gpu.log"
