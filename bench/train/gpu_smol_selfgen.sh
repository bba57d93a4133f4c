#!/usr/bin/env bash
# On the GPU machine, after background_build.sh (the Python package in /tmp/lsite; SmolLM2's parts
# in /tmp/models/parts): the SmolLM2 draft trained on corpus C plus the target's own greedy
# continuations (`python -m longspec.training.data selfgen`: 768-token prompts cut from C's rows,
# 256 new tokens, about 30% of stage-1 rows), with the command of the 2026-12-02 temperature
# ablation's T = 0.5 arm (seed 8, 1400 + 400 steps from the shipped draft). That arm's draft
# (trained on C alone, carried to /tmp/drafts/t05) and the shipped draft are evaluated beside it:
# tau on the same 16 books documents, [6,6,6] and the 69-node tree.
# Needs /tmp/data/{C,books} (data.py prepare outputs) and /tmp/drafts/t05. Other arms of the same
# ablation: SELFGEN_ARGS (more selfgen options, e.g. "--shape instruction --temperature 0.7") and
# ARM (the arm's name, default selfgen).
# shellcheck disable=SC2086 # SELFGEN_ARGS is a list of options
set -uo pipefail
mkdir -p /tmp/bgout
source /tmp/src/bench/gpu/device_env.sh
for _ in $(seq 1 240); do [ -e /tmp/bg/done ] || [ -e /tmp/bg/failed ] && break; sleep 2; done
[ -e /tmp/bg/done ] || { log "build not done"; exit 1; }
mkdir -p /tmp/lscache/models
[ -e "$SMOL" ] || python3 /tmp/models/parts.py join /tmp/models/parts SmolLM2-135M-Instruct.Q4_1.gguf "$SMOL"
log "selfgen started"
python3 -m longspec.training.data selfgen --data /tmp/data/C --out /tmp/data/G --target "$SMOL" \
  --rows 4096 --new-tokens 256 --mix 0.3 --batch-size 512 --seed 8 --time-limit 100 ${SELFGEN_ARGS:-} \
  > /tmp/bgout/selfgen.json 2> /tmp/bgout/selfgen.log
log "selfgen exit $?: $(tr -d '\n ' < /tmp/bgout/selfgen.json | head -c 400)"
cp /tmp/data/books/heldout_long.npz /tmp/data/G/heldout_long.npz
log "training started"
smol_draft_ablation --arm "${ARM:-selfgen}=/tmp/data/G" --arm-args "${ARM:-selfgen}=--distill-temperature 0.5" \
  --baseline t05=/tmp/drafts/t05
log "selfgen ablation exit $?"
touch /tmp/bgout/selfgen_done
