#!/usr/bin/env bash
# On the GPU machine, as bench/gpu/background_checks.sh's train.sh: one switch's A/B with the
# "on" runs bracketing the "off" one (their spread is the noise a difference must exceed):
# draft_level_ab.sh with SWITCHES=$SWITCH (SmolLM2 bench off against the chain's bench on, CUPTI
# timelines both ways, then Qwen-Coder's bench and GPU tests on when its parts are here), Qwen-
# Coder's bench with the switch off, and a second SmolLM2 bench with it on.
#   SWITCH=LONGSPEC_DECODE_QUERY_TILES SMOL_BENCH_ARGS="--hf= --tree 6,6,6 ..." bash /tmp/src/bench/gpu/bracket_ab.sh
# (2026-12-01, sixth session: LONGSPEC_DECODE_QUERY_TILES, run under the name query_tiles_ab.sh,
# and LONGSPEC_SPLITK_ROW_TILES.)
: "${SWITCH:?name the switch to turn off}"
SWITCHES=$SWITCH bash /tmp/src/bench/gpu/draft_level_ab.sh
source /tmp/src/bench/gpu/device_env.sh
bench_qwen05 "bench_qwen05_${SWITCH}0" 4,4 "" "$SWITCH=0"
bench_smol bench_smollm2_on2
