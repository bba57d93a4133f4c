#!/usr/bin/env bash
# On the GPU machine, as bench/gpu/background_checks.sh's train.sh (after the C++ GPU tests and its
# SmolLM2 bench, which ran with every switch at its default): one switch's A/B in the same chain,
# and where a round's time goes.
#   SWITCH=VAR         bench_gpu.py on SmolLM2 again with VAR=0 (the same SMOL_BENCH_ARGS), into
#                      /tmp/bgout/bench_smollm2_<VAR>0
#   OPS=MODE           also cuda_ops_bench MODE with VAR=0 then 1 (e.g. gemm-wide, norm-gemm)
#   PROFILE_TREE=T     then Nsight Compute kernel times of one round of tree T and of a plain step
#                      (bench/gpu/profile_rounds.sh, random-weight SmolLM2 shape at 8192)
# e.g. /tmp/bgout/train.sh: SWITCH=LONGSPEC_FUSE_NORM_SLICES OPS=norm-gemm PROFILE_TREE=4,16,16,16,16 \
#        bash /tmp/src/bench/gpu/switch_ab_checks.sh
# (2026-12-01: SWITCH=LONGSPEC_WIDE_ROWS_GEMM OPS=gemm-wide PROFILE_TREE=16,32,32,32,32 made
# bench/results/gpu_wide_trees_2026-12-01.md.)
source /tmp/src/bench/gpu/device_env.sh
: "${SWITCH:?name the switch to turn off}"
if [ -n "${OPS:-}" ]; then
  for v in 0 1; do
    echo "== $SWITCH=$v"
    env "$SWITCH=$v" /tmp/build_gpu/cuda_ops_bench "$OPS"
  done > "/tmp/bgout/$OPS.txt" 2>&1
  log "$OPS A/B exit $?"
fi
# shellcheck disable=SC2086 # SMOL_BENCH_ARGS is a list of options
env "$SWITCH=0" timeout 900 python3 bench/bench_gpu.py --out-dir "/tmp/bgout/bench_smollm2_${SWITCH}0" \
  --models smollm2-135m --smollm2 "$SMOL" --work /tmp/longspec_bench ${SMOL_BENCH_ARGS:-} \
  > "/tmp/bgout/bench_smollm2_${SWITCH}0.log" 2>&1
log "bench smollm2 $SWITCH=0 exit $?"
if [ -n "${PROFILE_TREE:-}" ]; then
  OUT=/tmp/bgout/prof TREE=$PROFILE_TREE bash bench/gpu/profile_rounds.sh "smollm2-135m-shape 8192" \
    > /tmp/bgout/prof.log 2>&1
  log "profile exit $?"
fi
