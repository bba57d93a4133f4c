#!/usr/bin/env bash
# On the GPU machine, as bench/gpu/background_checks.sh's train.sh (after the C++ GPU tests, the
# Python GPU tests and its SmolLM2 bench with every switch at its default): the draft level's
# kernels A/B (every switch of SWITCHES at 0 against the defaults, same SMOL_BENCH_ARGS as the
# chain's own bench), the CUPTI timelines of a whole real SmolLM2 generation with each setting (a
# draft level kernel by kernel), then Qwen-Coder with its packaged tree (bench + its GPU tests)
# when its parts are there.
#   SWITCHES="LONGSPEC_RANK_TREE_SELECT" bash /tmp/src/bench/gpu/draft_level_ab.sh
# (2026-12-01: LONGSPEC_TREE_BLOCKS_PARALLEL with the since removed fused select made
# bench/results/gpu_draft_level_kernels_2026-12-01.md.)
source /tmp/src/bench/gpu/device_env.sh
: "${SMOL_BENCH_ARGS:?the SmolLM2 bench options of the chain}"
OFF=()
for s in ${SWITCHES:-LONGSPEC_TREE_BLOCKS_PARALLEL LONGSPEC_RANK_TREE_SELECT}; do OFF+=("$s=0"); done
# shellcheck disable=SC2086 # SMOL_BENCH_ARGS is a list of options
env "${OFF[@]}" timeout 600 python3 bench/bench_gpu.py --out-dir /tmp/bgout/bench_smollm2_level_off --models smollm2-135m \
  --smollm2 "$SMOL" --work /tmp/longspec_bench $SMOL_BENCH_ARGS > /tmp/bgout/bench_smollm2_level_off.log 2>&1
log "bench smollm2 level kernels off exit $?"
cuda=${CUDA_HOME:-/usr/local/cuda}
g++ -O2 -shared -fPIC -o /tmp/libkernel_trace.so bench/gpu/kernel_trace.cc -I"$cuda/include" \
  -L"$cuda/lib64" -L"$cuda/lib" -lcupti -Wl,-rpath,"$cuda/lib64:$cuda/lib"
for setting in on off; do
  envs=()
  [ "$setting" = off ] && envs=("${OFF[@]}")
  csv=/tmp/bgout/trace_level_$setting.csv
  env "${envs[@]}" LD_PRELOAD=/tmp/libkernel_trace.so KERNEL_TRACE_CSV="$csv" timeout 300 python3 bench/gpu/profile_round.py \
    smollm2-135m-shape 8000 --model "$SMOL" --draft models/smollm2-135m-instruct-longspec --tree "${TRACE_TREE:-6,6,6}" \
    --trace --whole 2> "$csv.err"
  python3 bench/gpu/profile_round.py --timeline "$csv" > "/tmp/bgout/timeline_level_$setting.txt"
  python3 bench/gpu/profile_round.py --rounds "$csv" > "/tmp/bgout/rounds_level_$setting.txt"
  rm -f "$csv"
done
log "level timelines done"
qwen05_checks bench_qwen05 4,4 "4,4,4,2"
