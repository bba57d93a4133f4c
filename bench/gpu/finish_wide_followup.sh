#!/usr/bin/env bash
# On the GPU machine, as background_checks.sh's train.sh (after its Python GPU tests and SmolLM2
# bench at the defaults, which now finish decode on the wide kernel): the wide finishing kernel's
# sanitizer question and end-to-end A/B, and the split-K GEMM for weights of 2-3 rounds
# (LONGSPEC_SPLITK_SHORT, an experiment), the decode prefix kernel's third stage at head_dim 128
# (LONGSPEC_DECODE_STAGES_128=3). Results under /tmp/bgout/followup.
# The record of its run: bench/results/gpu_finish_wide_2026-12-02.md. Both experiments were slower
# and their switches removed after it; with them gone those settings time the same kernels.
set -uo pipefail
cd /tmp/src
source bench/gpu/device_env.sh
B=/tmp/build_gpu
R=/tmp/bgout/followup
mkdir -p $R
export OUT=$R

# 0. the attention and engine GPU tests (the checks before this ran with SKIP_CPP=1).
$B/longspec_cuda_tests --gtest_filter='CudaAttention.*:CudaEngineTest.*' > $R/cuda_tests_attention_engine.log 2>&1
log "GoogleTest CudaAttention.* CudaEngineTest.* exit $? ($(grep -c '^\[       OK' $R/cuda_tests_attention_engine.log) ok)"

# 1. racecheck and named barriers: the pattern alone, then the new kernel's test under synccheck.
nvcc -arch=sm_90a -lineinfo -o /tmp/nbr bench/gpu/named_barrier_racecheck.cu > $R/nbr_build.log 2>&1
for tool in racecheck synccheck; do
  compute-sanitizer --tool $tool /tmp/nbr > $R/nbr_$tool.log 2>&1
  log "named-barrier pattern under $tool exit $?: $(grep -E 'SUMMARY|values' $R/nbr_$tool.log | tr '\n' ' ')"
done
timeout 120 compute-sanitizer --tool synccheck --error-exitcode 9 $B/longspec_cuda_tests \
  --gtest_filter='CudaAttention.FinishWideGivesTheFinishingKernelsBits' > $R/sanitizer_synccheck.log 2>&1
log "FinishWide test under synccheck exit $?: $(grep -E 'SUMMARY' $R/sanitizer_synccheck.log | tr '\n' ' ')"

# 2. split-K for 2-3 round weights: micro, then timelines.
for s in 0 1; do
  LONGSPEC_SPLITK_SHORT=$s $B/cuda_ops_bench gemm-decode > $R/gemm_decode_short$s.txt 2>&1
  log "gemm-decode short $s exit $?"
done
for s in 0 1; do
  LONGSPEC_SPLITK_SHORT=$s OUT=$R/trace_short$s bash bench/gpu/trace_steps.sh "qwen2.5-1.5b-shape 32768" > $R/trace_short$s.log 2>&1
  log "trace short $s exit $?"
done

# 2b. the decode prefix kernel with a third K/V stage at head_dim 128 (LONGSPEC_DECODE_STAGES_128).
for shape in "12 2 128 32768 1" "12 2 128 32768 2" "12 2 128 131072 1" "32 8 128 8192 1" "32 8 128 32768 1"; do
  for st in 2 3; do
    echo "== attn $shape, LONGSPEC_DECODE_STAGES_128=$st" >> $R/attn_decode_stages.txt
    LONGSPEC_DECODE_STAGES_128=$st $B/cuda_ops_bench attn $shape 2>&1 | tail -1 >> $R/attn_decode_stages.txt
  done
done
log "attn stages done"
LONGSPEC_DECODE_STAGES_128=3 OUT=$R/trace_stages3 bash bench/gpu/trace_steps.sh "qwen2.5-1.5b-shape 32768" > $R/trace_stages3.log 2>&1
log "trace stages 3 exit $?"

# 3. end to end, the wide finishing kernel off against on (on: the defaults' bench before this).
for w in 1 0; do
  LONGSPEC_FINISH_WIDE=$w timeout 600 python3 bench/bench_gpu.py --out-dir $R/bench_shapes_wide$w \
    --models qwen2.5-1.5b-shape --work /tmp/longspec_bench --hf= --phase-models= --no-plot --no-auto \
    > $R/bench_shapes_wide$w.log 2>&1
  log "bench shapes wide $w exit $?"
done
touch $R/done
