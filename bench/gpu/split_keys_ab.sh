#!/usr/bin/env bash
# On the GPU machine, as bench/gpu/background_checks.sh's train.sh (after its SmolLM2 bench with
# the default build, attention splits of 256 keys): a second build with LONGSPEC_ATTN_SPLIT_KEYS
# (default 128; every attention kernel follows it, so that build is exact within itself), its C++
# GPU tests, the SmolLM2 bench with it, a second bench with the default build (the two default
# runs bracket the variant), CUPTI timelines of both, and Qwen-Coder with both when its parts are
# here. The why: a decode step's attention at 8k has 32 splits a KV head (96 blocks for SmolLM2,
# one a SM, DRAM at 17%: bench/results/gpu_ncu_verify_kernels_2026-12-01.md); shorter splits give
# twice the blocks and half the chain each, for twice the states to fold.
#   SMOL_BENCH_ARGS="--hf= --tree 6,6,6 ..." [SPLIT_KEYS=128] bash /tmp/src/bench/gpu/split_keys_ab.sh
source /tmp/src/bench/gpu/device_env.sh
: "${SMOL_BENCH_ARGS:?the SmolLM2 bench options of the chain}"
keys=${SPLIT_KEYS:-128}
site=/tmp/lsite$keys
# A copy of the tree without its build/ (scikit-build-core keeps its CMake build there, configured
# for the default splits).
src=/tmp/src_split$keys
rm -rf "$src" && cp -r /tmp/src "$src" && rm -rf "$src/build"
LONGSPEC_ATTN_SPLIT_KEYS=$keys CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) LONGSPEC_CUDA=ON LONGSPEC_CUDA_ARCHITECTURES=90a \
  PYTHONPATH=/tmp/site python3 -m pip install -q --no-build-isolation --no-deps --no-cache-dir --target "$site" "$src" \
  > "/tmp/bgout/build_split$keys.log" 2>&1
log "package with splits of $keys keys built: exit $?"
LONGSPEC_ATTN_SPLIT_KEYS=$keys BUILD=/tmp/build_split$keys OUT=/tmp/bgout/cpp_split$keys bash tests/run_gpu.sh tests \
  > "/tmp/bgout/cpp_split$keys.txt" 2>&1
log "C++ GPU tests, splits of $keys keys: $(grep -E 'PASSED|FAILED|exit' "/tmp/bgout/cpp_split$keys.txt" | tr '\n' ' ')"
# The attention alone in both builds: SmolLM2's heads at 8k (a decode row, a 19-row tree) and
# Llama-8B's at 32k (a decode row, the 69-node tree).
for b in "256:/tmp/build_gpu" "$keys:/tmp/build_split$keys"; do
  for shape in "9 3 64 8192 1" "9 3 64 8192 19" "32 8 128 32768 1" "32 8 128 32768 69"; do
    # shellcheck disable=SC2086 # the shape is a list of arguments
    "${b#*:}/cuda_ops_bench" attn $shape 2>&1 | grep -E "^attn" | sed "s/^/splits of ${b%%:*}: /"
  done
done > /tmp/bgout/attn_split_keys.txt
log "attention alone in both builds: exit $?"
bench_smol "bench_smollm2_split$keys" "PYTHONPATH=$site:/tmp/site"
bench_smol bench_smollm2_split256_again
smol_timeline split256
smol_timeline "split$keys" "PYTHONPATH=$site:/tmp/site"
log "timelines done"
bench_qwen05 bench_qwen05_split256 4,4 ""
bench_qwen05 "bench_qwen05_split$keys" 4,4 "" "PYTHONPATH=$site:/tmp/site"
