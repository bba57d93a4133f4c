#!/usr/bin/env bash
# On the GPU machine (a fresh one is fine): the bulk-stream GEMM (cuda/gemm_bulk.cuh) built,
# tested and timed with a switch on and off in one background chain: the C++ build, GoogleTest
# CudaLinear.* (its own test compares the bulk kernel with the split-K kernel),
# `cuda_ops_bench gemm-decode` on, off, on, memcheck on its test, the whole GoogleTest suite,
# then the Python package, plain-step timelines and bench_gpu.py's shapes on and off (ONLY_ON=1:
# on only), synccheck on its test (racecheck cannot follow the consumers' turn counter: it
# reports the running totals' hand-over, see gemm_bulk.cuh). Every step under a timeout.
# SWITCH names the switch (default LONGSPEC_GEMM_BULK); PATCH a pending patch applied to the
# snapshot first when the tree lacks it (e.g. PATCH=bench/gpu/pending/gemm_bulk_narrow.patch
# SWITCH=LONGSPEC_GEMM_BULK_NARROW).
# Results in /tmp/bgout/bulk.
#   bash bench/gpu/gemm_bulk_ab.sh            # snapshot to /tmp/src, starts in the background
#   bash bench/gpu/gemm_bulk_ab.sh --status
set -uo pipefail
R=/tmp/bgout/bulk
if [ "${1:-}" = "--status" ]; then
  cat $R/progress 2>/dev/null
  exit 0
fi
if [ "${1:-}" != "--run" ]; then
  rm -rf /tmp/src && mkdir -p /tmp/src $R && cp -r . /tmp/src/
  ONLY_ON=${ONLY_ON:-0} SWITCH=${SWITCH:-LONGSPEC_GEMM_BULK} PATCH=${PATCH:-} setsid nohup bash /tmp/src/bench/gpu/gemm_bulk_ab.sh --run > $R/chain.log 2>&1 < /dev/null &
  echo "chain started"
  exit 0
fi
cd /tmp/src
B=/tmp/build_gpu
SWITCH=${SWITCH:-LONGSPEC_GEMM_BULK}
PATCH=${PATCH:-}
log() { echo "[$(date +%T)] $*" >> $R/progress; }
if [ -n "$PATCH" ] && git apply --check "$PATCH" 2> /dev/null; then
  git apply "$PATCH" || { log "patch $PATCH failed"; exit 1; }
  log "applied $PATCH"
fi
BUILD=$B OUT=$R/cpp bash tests/run_gpu.sh > $R/build.txt 2>&1 || { log "build failed"; exit 1; }
log "C++ built"
ok() { echo "$(grep -c '^\[       OK' "$1") ok: $(grep -E '^\[  FAILED' "$1" | head -3 | tr '\n' ' ')"; }
timeout 300 $B/longspec_cuda_tests --gtest_filter='CudaLinear.*' > $R/cuda_tests_linear.log 2>&1
log "GoogleTest CudaLinear.* exit $? ($(ok $R/cuda_tests_linear.log))"
i=0
for s in 1 0 1; do
  i=$((i + 1))
  env "$SWITCH=$s" timeout 120 $B/cuda_ops_bench gemm-decode > $R/gemm_decode_run${i}_bulk$s.txt 2>&1
  log "gemm-decode run $i $SWITCH=$s exit $?"
done
timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 $B/longspec_cuda_tests \
  --gtest_filter='CudaLinear.BulkStreamGivesTheSplitKBits' > $R/sanitizer_memcheck.log 2>&1
log "memcheck exit $?: $(grep -E 'ERROR SUMMARY' $R/sanitizer_memcheck.log | head -1)"
timeout 600 $B/longspec_cuda_tests > $R/cuda_tests_all.log 2>&1
log "GoogleTest all exit $? ($(ok $R/cuda_tests_all.log))"
mkdir -p $R/py
OUT=$R/py source bench/gpu/package_site.sh
log "package built"
ab=(1 0)
[ "${ONLY_ON:-0}" = 1 ] && ab=(1)
for s in "${ab[@]}"; do
  env "$SWITCH=$s" OUT=$R/trace_bulk$s timeout 400 bash bench/gpu/trace_steps.sh "qwen2.5-1.5b-shape 32768" \
    "qwen2.5-0.5b-shape 32768" "smollm2-135m-shape 8192" "llama3-8b-shape 32768" > $R/trace_bulk$s.log 2>&1
  log "trace bulk $s exit $?"
done
for s in "${ab[@]}"; do
  env "$SWITCH=$s" timeout 600 python3 bench/bench_gpu.py --out-dir $R/bench_shapes_bulk$s \
    --models qwen2.5-1.5b-shape --work /tmp/longspec_bench --hf= --phase-models= --no-plot --no-auto \
    > $R/bench_shapes_bulk$s.log 2>&1
  log "bench shapes bulk $s exit $?"
done
for tool in synccheck; do
  timeout 300 compute-sanitizer --tool $tool --error-exitcode 9 $B/longspec_cuda_tests \
    --gtest_filter='CudaLinear.BulkStreamGivesTheSplitKBits' > $R/sanitizer_$tool.log 2>&1
  log "$tool exit $?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $R/sanitizer_$tool.log | head -2 | tr '\n' ' ')"
done
touch $R/done
