#!/usr/bin/env bash
# On the GPU machine (run by bench/gpu/background_checks.sh as /tmp/bgout/train.sh, after the C++
# GPU tests and its SmolLM2 bench, which ran with every switch at its default): the end-to-end A/B
# of the fused input RMSNorm in row slices, and where a default-tree round's time goes now.
#   1. bench_gpu.py on SmolLM2 again with LONGSPEC_FUSE_NORM_SLICES=0 (the same SMOL_BENCH_ARGS);
#   2. Nsight Compute kernel times of one round of the default tree [4,16,16,16,16] and of a plain
#      step (random-weight SmolLM2 shape at 8192).
set -uo pipefail
cd /tmp/src
export PYTHONPATH=/tmp/lsite:/tmp/site LONGSPEC_CACHE=/tmp/lscache PYTHONUNBUFFERED=1
log() { echo "[$(date +%T)] $*" >> /tmp/bgout/progress; }
SMOL=/tmp/lscache/models/SmolLM2-135M-Instruct.Q4_1.gguf
# shellcheck disable=SC2086 # SMOL_BENCH_ARGS is a list of options
LONGSPEC_FUSE_NORM_SLICES=0 timeout 900 python3 bench/bench_gpu.py --out-dir /tmp/bgout/bench_smollm2_norm0 \
  --models smollm2-135m --smollm2 "$SMOL" --work /tmp/longspec_bench ${SMOL_BENCH_ARGS:-} \
  > /tmp/bgout/bench_smollm2_norm0.log 2>&1
log "bench smollm2 LONGSPEC_FUSE_NORM_SLICES=0 exit $?"
OUT=/tmp/bgout/prof TREE=4,16,16,16,16 bash bench/gpu/profile_rounds.sh "smollm2-135m-shape 8192" \
  > /tmp/bgout/prof.log 2>&1
log "profile exit $?"
