#!/usr/bin/env bash
# On the GPU machine, after background_build.sh finished and the model parts arrived in
# /tmp/models/parts: joins the models, runs the C++ and Python GPU tests and the benchmark.
#   bash bench/gpu/final_run.sh [tests] [bench] [HF_METHODS]
set -uo pipefail
OUT=${OUT:-/tmp/longspec_out}
mkdir -p "$OUT"
for i in $(seq 1 120); do [ -e /tmp/bg/done ] || [ -e /tmp/bg/failed ] && break; sleep 5; done
[ -e /tmp/bg/done ] || { echo "background build not done:"; tail -20 /tmp/bg/build.log; exit 1; }
cp /tmp/bg/build.log "$OUT/bg_build.log"
export PYTHONPATH=/tmp/lsite:/tmp/site LONGSPEC_CACHE=/tmp/lscache PYTHONUNBUFFERED=1
mkdir -p /tmp/lscache/models /tmp/models
SMOL=/tmp/lscache/models/SmolLM2-135M-Instruct.Q4_1.gguf
QWEN=/tmp/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
[ -e "$SMOL" ] || python3 .models/parts.py join /tmp/models/parts SmolLM2-135M-Instruct.Q4_1.gguf "$SMOL"
[ -e "$QWEN" ] || python3 .models/parts.py join /tmp/models/parts qwen2.5-coder-0.5b-instruct-q4_k_m.gguf "$QWEN"
ls -la "$SMOL" "$QWEN"
export LONGSPEC_QWEN05_GGUF=$QWEN
for step in "$@"; do
  case "$step" in
    tests)
      /tmp/build_gpu/longspec_cuda_tests > "$OUT/cuda_tests.log" 2>&1; echo "C++ GPU tests exit $?"
      grep -E "^\[  (PASSED|FAILED)" "$OUT/cuda_tests.log"
      (cd /tmp/src && timeout 900 python3 -m pytest -q -m gpu -s tests/python/test_gpu.py -p no:cacheprovider) \
        > "$OUT/pytest_gpu.log" 2>&1
      echo "pytest -m gpu exit $?"; grep -E "passed|failed|skipped|Error|smollm2|qwen|relative|tau" "$OUT/pytest_gpu.log" | tail -30
      ;;
    bench)
      timeout ${BENCH_TIMEOUT:-530} python3 bench/bench_gpu.py --out-dir "$OUT" --smollm2 "$SMOL" --qwen05 "$QWEN" \
         --work /tmp/longspec_bench --hf "${HF_METHODS:-generate}" > "$OUT/bench_gpu.log" 2>&1
      echo "bench exit $?"; tail -20 "$OUT/bench_gpu.log"
      ;;
  esac
done
