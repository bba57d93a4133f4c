#!/usr/bin/env bash
# On the GPU machine, after `SKIP_RANDOM_CHECKPOINTS=1 bash bench/gpu/background_build.sh`: the
# wide finishing kernel (LONGSPEC_FINISH_WIDE) and the split-K GEMM's L2 prefetch
# (LONGSPEC_GEMM_L2_AHEAD, LONGSPEC_GEMM_L2_NEXT_WAVE) tested, then timed against their switches
# in one run: micro-benchmarks, the CUPTI timelines of plain steps, Nsight Compute on the new
# kernel, then the whole GoogleTest GPU suite and the sanitizers on the new test.
# The record of its run: bench/results/gpu_finish_wide_2026-12-02.md. The L2 prefetch's switches
# were removed after it (slower); with them gone those settings all time the same kernel.
#   bash bench/gpu/finish_wide_l2_ab.sh            # starts in the background, returns
#   bash bench/gpu/finish_wide_l2_ab.sh --status   # progress; results in /tmp/bgout
set -uo pipefail
if [ "${1:-}" = "--status" ]; then
  cat /tmp/bgout/progress 2>/dev/null
  exit 0
fi
if [ "${1:-}" != "--run" ]; then
  mkdir -p /tmp/bgout
  setsid nohup bash /tmp/src/bench/gpu/finish_wide_l2_ab.sh --run > /tmp/bgout/chain.log 2>&1 < /dev/null &
  echo "chain started"
  exit 0
fi
cd /tmp/src
B=/tmp/build_gpu
R=/tmp/bgout
log() { echo "[$(date +%T)] $*" >> $R/progress; }
while [ ! -e /tmp/bg/done ] && [ ! -e /tmp/bg/failed ]; do sleep 3; done
[ -e /tmp/bg/failed ] && { log "build failed"; exit 1; }
log "build done"

$B/longspec_cuda_tests --gtest_filter='CudaAttention.*:CudaLinear.*' > $R/cuda_tests_attention_linear.log 2>&1
log "GoogleTest CudaAttention.* CudaLinear.* exit $? ($(grep -c '^\[       OK' $R/cuda_tests_attention_linear.log) ok)"

for a in "0 0" "2 0" "3 0" "0 1" "2 1"; do
  set -- $a
  LONGSPEC_GEMM_L2_AHEAD=$1 LONGSPEC_GEMM_L2_NEXT_WAVE=$2 $B/cuda_ops_bench gemm-decode > $R/gemm_decode_ahead$1_next$2.txt 2>&1
  log "gemm-decode ahead $1 next wave $2 exit $?"
done

for shape in "9 3 64 8192" "14 2 64 32768" "12 2 128 32768" "32 8 128 32768" "12 2 128 131072"; do
  for wide in 0 1; do
    echo "== attn $shape 1, LONGSPEC_FINISH_WIDE=$wide" >> $R/attn_finish_wide.txt
    LONGSPEC_FINISH_WIDE=$wide $B/cuda_ops_bench attn $shape 1 2>&1 | tail -1 >> $R/attn_finish_wide.txt
  done
done
log "attn A/B done"

source bench/gpu/package_site.sh
log "package ready"
for setting in "base 0 0 0" "wide 1 0 0" "wide_l2 1 2 1"; do
  set -- $setting
  LONGSPEC_FINISH_WIDE=$2 LONGSPEC_GEMM_L2_AHEAD=$3 LONGSPEC_GEMM_L2_NEXT_WAVE=$4 OUT=$R/trace_$1 \
    bash bench/gpu/trace_steps.sh "qwen2.5-1.5b-shape 32768" "smollm2-135m-shape 8192" "qwen2.5-0.5b-shape 32768" \
    > $R/trace_$1.log 2>&1
  log "trace $1 exit $?"
done

OUT=$R/ncu BUILD=$B bash bench/gpu/profile_kernels.sh "attn 12 2 128 32768 1" > $R/ncu_finish_wide.log 2>&1
log "ncu exit $?"

$B/longspec_cuda_tests > $R/cuda_tests_all.log 2>&1
log "GoogleTest all exit $? ($(grep -c '^\[       OK' $R/cuda_tests_all.log) ok)"
for tool in memcheck racecheck; do
  timeout 300 compute-sanitizer --tool $tool --error-exitcode 9 $B/longspec_cuda_tests \
    --gtest_filter='CudaAttention.FinishWideGivesTheFinishingKernelsBits:CudaAttention.HybridMatchesCpu' > $R/sanitizer_$tool.log 2>&1
  log "compute-sanitizer $tool exit $?"
done
touch $R/all_done
