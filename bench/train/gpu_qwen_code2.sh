#!/usr/bin/env bash
# On the GPU machine (as /tmp/bgout/train.sh of bench/gpu/background_checks.sh): the shipped
# Qwen2.5-Coder-0.5B draft continued on the corpus of every training source (the six of its last
# segment plus `code2` and `manuals2`: `data.py prepare --sources
# stdlib,pydocs,man,info,manuals,code,manuals2,code2`, 32.5 M tokens), then tau of the new draft
# beside the shipped one on the `repos` set (whole unseen repositories) at 16k / 32k and on the
# corpus's held-out code, on the GPU.
# Needs: /tmp/models/parts (qwen05.gguf parts), /tmp/data/corpus_qwen2 (carried in two calls: it is
# 56 MB), /tmp/data/repos, the shipped draft in /tmp/src/models/.
source /tmp/src/bench/gpu/device_env.sh
Q=$(joined_model qwen05.gguf)
SHIPPED=models/qwen2.5-coder-0.5b-instruct-longspec
# The baseline without its subset head, as train-draft writes the new arm (the head changes tau a little).
mkdir -p /tmp/abl_out /tmp/shipped_fullvocab
cp $SHIPPED/config.json $SHIPPED/model.safetensors /tmp/shipped_fullvocab/
log "qwen code2 training started"
OUT=/tmp/abl_out python3 bench/train/gpu_ablation.py --model "$Q" --runs /tmp/runs \
  --arm code2=/tmp/data/corpus_qwen2 --baseline shipped=/tmp/shipped_fullvocab \
  --eval repos=/tmp/data/repos --eval code=/tmp/data/corpus_qwen2:code \
  --contexts 16384,32704 --docs 12 --trees 4,16,16,16,16 -- \
  --init $SHIPPED --stage1-steps 2600 --stage2-steps 500 --batch-size 8 --seq-len 1024 \
  --long-len 16384 --long-batch-size 1 --lr1 1.5e-4 --lr2 5e-5 --window 512 --seed 7 --distill 1.0 \
  --eval-every 500 --eval-seqs 8 --eval-len 4096 --save-every 1000 --time-limit "${TIME_LIMIT:-400}" > /tmp/abl_out/driver.log 2>&1
log "qwen code2 training exit $?"
