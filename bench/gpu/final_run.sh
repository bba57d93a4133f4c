#!/usr/bin/env bash
# On the GPU machine, after background_build.sh finished and the model parts arrived in
# /tmp/models/parts: joins the models, runs the C++ and Python GPU tests and the benchmark.
#   [HF_METHODS=generate,compile] [BENCH_TIMEOUT=530] [BENCH_ARGS="--contexts NAME=C1,C2 ..."] \
#     bash bench/gpu/final_run.sh [tests] [bench]
# bench: bench/bench_gpu.py (plain, speculative with the drafts in models/, HF generate, phase timing
# of llama3-8b-shape; about 5 minutes on an H200 with HF generate only; compile adds a compilation
# per context) -> $OUT/gpu_decode_<date>.json/.md, gpu_speculative_<date>.png, bench_gpu.log.
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
      # shellcheck disable=SC2086 # BENCH_ARGS is a list of options
      env -u LONGSPEC_PHASE_TIMING timeout ${BENCH_TIMEOUT:-530} python3 bench/bench_gpu.py --out-dir "$OUT" \
         --smollm2 "$SMOL" --smollm2-draft models/smollm2-135m-instruct-longspec \
         --qwen05 "$QWEN" --qwen05-draft models/qwen2.5-coder-0.5b-instruct-longspec \
         --work /tmp/longspec_bench --hf "${HF_METHODS:-generate}" ${BENCH_ARGS:-} > "$OUT/bench_gpu.log" 2>&1
      echo "bench exit $?"; grep -E "rows in|Error|Traceback" "$OUT/bench_gpu.log" | head -30
      cat "$OUT"/gpu_decode_*.md  # written after every row: complete even when the timeout cut the run
      ;;
  esac
done
