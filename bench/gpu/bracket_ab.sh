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
if [ -e /tmp/models/qwen05.gguf ]; then
  env "$SWITCH=0" timeout 600 python3 bench/bench_gpu.py --out-dir "/tmp/bgout/bench_qwen05_${SWITCH}0" \
    --models qwen2.5-coder-0.5b --qwen05 /tmp/models/qwen05.gguf --contexts qwen2.5-coder-0.5b=16384,32768 \
    --work /tmp/longspec_bench --hf= --tree 4,4 --phase-models= --no-plot > "/tmp/bgout/bench_qwen05_${SWITCH}0.log" 2>&1
  log "bench qwen05 $SWITCH=0 exit $?"
fi
# shellcheck disable=SC2086 # SMOL_BENCH_ARGS is a list of options
timeout 600 python3 bench/bench_gpu.py --out-dir /tmp/bgout/bench_smollm2_on2 --models smollm2-135m \
  --smollm2 "$SMOL" --work /tmp/longspec_bench $SMOL_BENCH_ARGS > /tmp/bgout/bench_smollm2_on2.log 2>&1
log "bench smollm2 on (second) exit $?"
