#!/usr/bin/env bash
# Every CUDA test and benchmark of adaptlearn in one go (issue #24). Each part has a time limit;
# together they stay under 8 minutes on one H200-class GPU. Usage:
#
#     bash benchmarks/gpu_suite.sh LOG_DIR
#
# Writes one log per part into LOG_DIR (env, tests, each benchmark) and prints each part's tail.
# Exit status 0 only if every part passed. Python: $PYTHON, else .venv/bin/python, else python3;
# the package is imported from src/ (no install needed).
set -uo pipefail
LOG_DIR=${1:?usage: bash benchmarks/gpu_suite.sh LOG_DIR}
mkdir -p "$LOG_DIR"
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0
suite_start=$(date +%s)

part() {  # part NAME TIMEOUT_S COMMAND...: run one part, log it, print its tail
  local name=$1 limit=$2
  shift 2
  local start rc
  start=$(date +%s)
  echo "== $name: $*"
  timeout "$limit" "$@" >"$LOG_DIR/$name.log" 2>&1
  rc=$?
  echo "   exit $rc after $(($(date +%s) - start)) s (log: $LOG_DIR/$name.log)"
  tail -n "${TAIL_LINES:-14}" "$LOG_DIR/$name.log" | sed 's/^/   | /'
  [ "$rc" -eq 0 ] || status=1
}

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv 2>&1
  "$PY" -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
  "$PY" -c "import triton; print('triton', triton.__version__)" 2>&1
} >"$LOG_DIR/env.log" 2>&1
cat "$LOG_DIR/env.log"
if ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "CUDA is not available to $PY: nothing to run" >&2
  exit 2
fi

# 1. The CUDA cases of the test suite (the `any_device` fixture's cuda params carry `gpu`).
part tests 200 "$PY" -m pytest tests -m gpu -q -p no:cacheprovider -o addopts="" \
  --import-mode=importlib --continue-on-collection-errors -rfEs --durations=10
# 2. AdaMod against Adam(fused=True) / Adam(foreach=True) at 8.9M and 134M parameters.
part optim_step 120 "$PY" benchmarks/optim_step.py --device cuda --no-single
# 3. MLSTM / MLSTM-F / MRNN against cuDNN nn.LSTM at B=256,H=256 and B=32,H=64 (T=500).
part long_memory 90 "$PY" benchmarks/long_memory.py --device cuda
# 4. Selective-Backprop against plain training with a CNN: per-epoch and to-target speed-ups.
part selection 70 "$PY" benchmarks/selection_speedup.py --device cuda

echo "gpu_suite: $(($(date +%s) - suite_start)) s, status $status"
exit "$status"
