#!/usr/bin/env bash
# On the GPU machine, after background_checks.sh (SmolLM2 joined, package built): the SmolLM2
# draft's distillation temperature, 0.25 against 0.5 (the shipped draft's), at equal budget, both
# arms continuing the shipped draft on corpus C at once on the one GPU; held-out loss on the books,
# then tau on 16 books documents with the packaged tree [6,6,6] and the 69-node tree.
# Needs /tmp/data/{C,books} (data.py prepare outputs).
source /tmp/src/bench/gpu/device_env.sh
cd /tmp/src
cp /tmp/data/books/heldout_long.npz /tmp/data/C/heldout_long.npz
log "temperature ablation started"
smol_draft_ablation --arm t05=/tmp/data/C --arm t025=/tmp/data/C --arm-args t05="--distill-temperature 0.5" \
  --arm-args t025="--distill-temperature 0.25"
log "temperature ablation exit $?"
touch /tmp/bgout/abl_done
