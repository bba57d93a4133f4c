#!/usr/bin/env bash
# On the GPU machine (run by bench/gpu/background_checks.sh as /tmp/bgout/train.sh, after the C++
# GPU tests and its SmolLM2 bench, which ran with every switch at its default): the measurements
# of trees of more than 128 nodes, each against its off switch in the same chain:
#   1. cuda_ops_bench gemm-wide (69 / 145 / 300 rows) with LONGSPEC_WIDE_ROWS_GEMM 0 then 1;
#   2. bench_gpu.py on SmolLM2 again with LONGSPEC_WIDE_ROWS_GEMM=0 (the same SMOL_BENCH_ARGS);
#   3. Nsight Compute kernel times of one round of the [16,32,32,32,32] tree (the tree growth's
#      top-k and selection kernels, the GEMMs) beside those of a plain step.
set -uo pipefail
cd /tmp/src
export PYTHONPATH=/tmp/lsite:/tmp/site LONGSPEC_CACHE=/tmp/lscache PYTHONUNBUFFERED=1
log() { echo "[$(date +%T)] $*" >> /tmp/bgout/progress; }
SMOL=/tmp/lscache/models/SmolLM2-135M-Instruct.Q4_1.gguf
for v in 0 1; do
  echo "== LONGSPEC_WIDE_ROWS_GEMM=$v"
  LONGSPEC_WIDE_ROWS_GEMM=$v /tmp/build_gpu/cuda_ops_bench gemm-wide
done > /tmp/bgout/gemm_wide.txt 2>&1
log "gemm-wide A/B exit $?"
# shellcheck disable=SC2086 # SMOL_BENCH_ARGS is a list of options
LONGSPEC_WIDE_ROWS_GEMM=0 timeout 900 python3 bench/bench_gpu.py --out-dir /tmp/bgout/bench_smollm2_gemm0 \
  --models smollm2-135m --smollm2 "$SMOL" --work /tmp/longspec_bench ${SMOL_BENCH_ARGS:-} \
  > /tmp/bgout/bench_smollm2_gemm0.log 2>&1
log "bench smollm2 LONGSPEC_WIDE_ROWS_GEMM=0 exit $?"
OUT=/tmp/bgout/prof TREE=16,32,32,32,32 bash bench/gpu/profile_rounds.sh "smollm2-135m-shape 8192" \
  > /tmp/bgout/prof.log 2>&1
log "profile exit $?"
