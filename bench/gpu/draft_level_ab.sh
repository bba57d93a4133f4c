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
bench_smol bench_smollm2_level_off "${OFF[@]}"
smol_timeline level_on
smol_timeline level_off "${OFF[@]}"
log "level timelines done"
qwen05_checks bench_qwen05 4,4 "4,4,4,2"
