#!/usr/bin/env bash
# On the GPU machine, as bench/gpu/background_checks.sh's train.sh (after its SmolLM2 bench with
# every switch at its default; background_checks.sh with SKIP_CPP=1): the early launches of
# bench/gpu/pending/early_launches.patch. First their tests (the C++ GPU tests; compute-sanitizer
# memcheck on the chain that reads q and keys around the waits and on the engine with each
# switch off, racecheck on the chain), then the A/B: bracket_ab.sh with LONGSPEC_GEMM_EARLY_TRIGGER (SmolLM2 off,
# CUPTI timelines on and off, Qwen-Coder on and off, SmolLM2 on again), a SmolLM2 bench with
# LONGSPEC_EARLY_PREFIX_KEYS=0, and the attention alone with each setting of that switch.
#   SMOL_BENCH_ARGS="--hf= --tree 6,6,6 --phase-models= --no-plot" bash /tmp/src/bench/gpu/early_launches_ab.sh
source /tmp/src/bench/gpu/device_env.sh
: "${SMOL_BENCH_ARGS:?the SmolLM2 bench options of the chain}"
BUILD=/tmp/build_gpu OUT=/tmp/bgout/cpp bash tests/run_gpu.sh tests > /tmp/bgout/cpp_tests.txt 2>&1
log "C++ GPU tests: $(grep -E 'PASSED|FAILED|exit' /tmp/bgout/cpp_tests.txt | tr '\n' ' ')"
# (racecheck on the engine test would not end in time: the attention chain only)
for tool in memcheck racecheck; do
  filter=CudaAttention.TreePartStartedEarlySeesTheQkvProductsRows
  [ "$tool" = memcheck ] && filter="$filter:CudaEngineTest.EarlyLaunchesChangeNoBit"
  timeout 240 compute-sanitizer --tool "$tool" --error-exitcode 9 /tmp/build_gpu/longspec_cuda_tests \
    --gtest_filter="$filter" > "/tmp/bgout/sanitizer_$tool.log" 2>&1
  log "$tool exit $?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "/tmp/bgout/sanitizer_$tool.log" | tr '\n' ' ')"
done
SWITCH=LONGSPEC_GEMM_EARLY_TRIGGER bash /tmp/src/bench/gpu/bracket_ab.sh
bench_smol bench_smollm2_prefix_keys_off LONGSPEC_EARLY_PREFIX_KEYS=0
for setting in 1 0 1; do
  for shape in "9 3 64 8192 1" "14 2 64 32768 1" "32 8 128 32768 1"; do
    # shellcheck disable=SC2086 # the shape is a list of arguments
    LONGSPEC_EARLY_PREFIX_KEYS=$setting /tmp/build_gpu/cuda_ops_bench attn $shape 2>&1 | grep -E "^attn" |
      sed "s/^/early prefix keys $setting: /"
  done
done > /tmp/bgout/attn_prefix_keys.txt
log "attention alone with and without the early keys: exit $?"
