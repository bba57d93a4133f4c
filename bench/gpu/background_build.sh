#!/usr/bin/env bash
# On the GPU machine: a snapshot of the tree to /tmp/src, then (in the background, so that model
# parts can travel meanwhile) the C++ GPU tests and benchmark, the Python package with its CUDA
# part into /tmp/lsite, and the random-weight checkpoints of the timing shapes. Writes
# /tmp/bg/build.log and /tmp/bg/done (or /tmp/bg/failed).
#   [SKIP_RANDOM_CHECKPOINTS=1] [SKIP_CPP_BUILD=1] bash bench/gpu/background_build.sh   # starts it and returns
#   bash bench/gpu/background_build.sh --status   # prints how far it got
set -uo pipefail
if [ "${1:-}" = "--status" ]; then
  ls /tmp/bg 2>/dev/null; tail -5 /tmp/bg/build.log 2>/dev/null; exit 0
fi
if [ "${1:-}" != "--run" ]; then
  rm -rf /tmp/src /tmp/bg && mkdir -p /tmp/src /tmp/bg
  cp -r . /tmp/src/
  setsid nohup bash /tmp/src/bench/gpu/background_build.sh --run > /tmp/bg/build.log 2>&1 < /dev/null &
  echo "background build started"
  exit 0
fi
cd /tmp/src
t0=$(date +%s)
step() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || { touch /tmp/bg/failed; exit 1; }
step "wheels installed"
# (SKIP_CPP_BUILD=1: a chain that needs only the Python package, e.g. draft training, saves ~40 s)
if [ -z "${SKIP_CPP_BUILD:-}" ]; then
  BUILD=/tmp/build_gpu OUT=/tmp/bg/cpp bash tests/run_gpu.sh || { touch /tmp/bg/failed; exit 1; }
  step "C++ tests and bench built"
fi
export PYTHONPATH=/tmp/site
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) LONGSPEC_CUDA=ON LONGSPEC_CUDA_ARCHITECTURES=90a \
  python3 -m pip install -q --no-build-isolation --no-deps --target /tmp/lsite . || { touch /tmp/bg/failed; exit 1; }
step "python package built"
# (SKIP_RANDOM_CHECKPOINTS=1: a chain that times only the real models saves their ~2 minutes)
if [ -z "${SKIP_RANDOM_CHECKPOINTS:-}" ]; then
  for shape in qwen2.5-1.5b-shape llama3-8b-shape; do
    python3 bench/make_random_checkpoint.py "$shape" "/tmp/longspec_bench/$shape" --max-position 36864 || { touch /tmp/bg/failed; exit 1; }
  done
  step "random checkpoints written"
fi
touch /tmp/bg/done
