#!/usr/bin/env bash
# On the GPU machine, while model parts travel in later calls: waits for background_build.sh, then
# runs in the background what needs no more than the SmolLM2 GGUF (its parts in
# /tmp/models/parts): the C++ GPU tests and compute-sanitizer, every Python GPU test, and
# bench_gpu.py on SmolLM2 (BENCH_ARGS adds options). Logs and results go to /tmp/bgout; a line per
# finished step to /tmp/bgout/progress.
#   bash bench/gpu/background_checks.sh            # starts it and returns
#   bash bench/gpu/background_checks.sh --status   # how far it got
#   QWEN=1 bash bench/gpu/background_checks.sh     # the Qwen2.5-Coder-0.5B GPU tests only (its GGUF joined)
set -uo pipefail
if [ "${1:-}" = "--status" ]; then
  cat /tmp/bgout/progress 2>/dev/null; tail -3 /tmp/bg/build.log 2>/dev/null; exit 0
fi
if [ "${1:-}" != "--run" ]; then
  mkdir -p /tmp/bgout
  setsid nohup env QWEN="${QWEN:-}" BENCH_ARGS="${BENCH_ARGS:-}" bash /tmp/src/bench/gpu/background_checks.sh --run \
    >> /tmp/bgout/checks.log 2>&1 < /dev/null &
  echo "background checks started"
  exit 0
fi
cd /tmp/src
log() { echo "[$(date +%T)] $*" >> /tmp/bgout/progress; }
for _ in $(seq 1 240); do [ -e /tmp/bg/done ] || [ -e /tmp/bg/failed ] && break; sleep 5; done
[ -e /tmp/bg/done ] || { log "build not done"; exit 1; }
export PYTHONPATH=/tmp/lsite:/tmp/site LONGSPEC_CACHE=/tmp/lscache PYTHONUNBUFFERED=1
SMOL=/tmp/lscache/models/SmolLM2-135M-Instruct.Q4_1.gguf
QWEN05=/tmp/models/qwen05.gguf
mkdir -p /tmp/lscache/models
if [ -n "${QWEN:-}" ]; then
  [ -e "$QWEN05" ] || python3 /tmp/models/parts.py join /tmp/models/parts qwen05.gguf "$QWEN05"
  LONGSPEC_QWEN05_GGUF=$QWEN05 timeout 900 python3 -m pytest -q -m gpu -p no:cacheprovider \
    tests/python/test_gpu.py -k "qwen" > /tmp/bgout/pytest_gpu_qwen.log 2>&1
  log "pytest qwen exit $?: $(tail -1 /tmp/bgout/pytest_gpu_qwen.log)"
  exit 0
fi
[ -e "$SMOL" ] || python3 /tmp/models/parts.py join /tmp/models/parts SmolLM2-135M-Instruct.Q4_1.gguf "$SMOL"
ls -la "$SMOL" >> /tmp/bgout/progress
BUILD=/tmp/build_gpu OUT=/tmp/bgout/cpp bash tests/run_gpu.sh tests sanitize > /tmp/bgout/cpp_tests.txt 2>&1
log "C++ GPU tests + sanitizers: $(grep -E 'PASSED|FAILED|exit|SUMMARY' /tmp/bgout/cpp_tests.txt | tr '\n' ' ')"
timeout 900 python3 -m pytest -q -m gpu -p no:cacheprovider tests/python/test_gpu.py tests/python/test_draft_head.py \
  tests/python/test_request_isolation.py > /tmp/bgout/pytest_gpu.log 2>&1
log "pytest gpu exit $?: $(tail -1 /tmp/bgout/pytest_gpu.log)"
# shellcheck disable=SC2086 # BENCH_ARGS is a list of options
timeout 900 python3 bench/bench_gpu.py --out-dir /tmp/bgout/bench --models smollm2-135m --smollm2 "$SMOL" \
  --work /tmp/longspec_bench --hf generate ${BENCH_ARGS:-} > /tmp/bgout/bench_smollm2.log 2>&1
log "bench smollm2 exit $?"
