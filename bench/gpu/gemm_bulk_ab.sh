#!/usr/bin/env bash
# On the GPU machine (a fresh one is fine): the bulk-stream GEMM (cuda/gemm_bulk.cuh) built,
# tested and timed with a switch on and off in one background chain: the C++ build, GoogleTest
# CudaLinear.* (its own test compares the bulk kernel with the split-K kernel),
# `cuda_ops_bench gemm-decode` on, off, on, memcheck on its test, the whole GoogleTest suite,
# then the Python package, plain-step timelines and bench_gpu.py's shapes on and off (ONLY_ON=1:
# on only), synccheck on its test (racecheck cannot follow the consumers' turn counter: it
# reports the running totals' hand-over, see gemm_bulk.cuh). Every step under a timeout.
# SWITCH names the switch (default LONGSPEC_GEMM_BULK; a setting with a value other than 0 and
# 1 as SWITCH=NAME with ON=value OFF=value); PATCH pending patches applied in order to the snapshot
# first where the tree lacks them (e.g. PATCH=bench/gpu/pending/gemm_bulk_narrow.patch
# SWITCH=LONGSPEC_GEMM_BULK_NARROW); PHASES="plain speculative" (with TREE=4,4, say) adds the
# timelines of speculation rounds.
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
  ONLY_ON=${ONLY_ON:-0} SWITCH=${SWITCH:-LONGSPEC_GEMM_BULK} PATCH=${PATCH:-} ON=${ON:-1} OFF=${OFF:-0} \
    PHASES=${PHASES:-plain} TREE=${TREE:-} setsid nohup bash /tmp/src/bench/gpu/gemm_bulk_ab.sh --run > $R/chain.log 2>&1 < /dev/null &
  echo "chain started"
  exit 0
fi
cd /tmp/src
B=/tmp/build_gpu
SWITCH=${SWITCH:-LONGSPEC_GEMM_BULK}
PATCH=${PATCH:-}
ON=${ON:-1}
OFF=${OFF:-0}
log() { echo "[$(date +%T)] $*" >> $R/progress; }
for patch in $PATCH; do  # in order; one already in the tree is skipped
  if git apply --check "$patch" 2> /dev/null; then
    git apply "$patch" || { log "patch $patch failed"; exit 1; }
    log "applied $patch"
  fi
done
BUILD=$B OUT=$R/cpp bash tests/run_gpu.sh > $R/build.txt 2>&1 || { log "build failed"; exit 1; }
log "C++ built"
ok() { echo "$(grep -c '^\[       OK' "$1") ok: $(grep -E '^\[  FAILED' "$1" | head -3 | tr '\n' ' ')"; }
timeout 300 $B/longspec_cuda_tests --gtest_filter='CudaLinear.*' > $R/cuda_tests_linear.log 2>&1
log "GoogleTest CudaLinear.* exit $? ($(ok $R/cuda_tests_linear.log))"
i=0
for s in $ON $OFF $ON; do
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
ab=("$ON" "$OFF")
[ "${ONLY_ON:-0}" = 1 ] && ab=("$ON")
for s in "${ab[@]}"; do
  env "$SWITCH=$s" OUT=$R/trace_bulk$s PHASES="${PHASES:-plain}" timeout 400 bash bench/gpu/trace_steps.sh "qwen2.5-1.5b-shape 32768" \
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
