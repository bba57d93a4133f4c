#!/usr/bin/env bash
# On the GPU machine (as /tmp/bgout/train.sh of bench/gpu/background_checks.sh, or from
# bench/gpu/qwen15_chain.sh): the first LongSpec draft of Qwen2.5-Coder-1.5B-Instruct (Q4_K_M,
# sha256 cc324af0...b046; `parts.py split qwen15.gguf DIR --mb 50` gives 22 parts), trained from
# scratch, distilled, with the exact LongSpec architecture (the MLP as wide as the target's), on
# the corpus of every training source (the two Qwen models share one tokenizer, so the 0.5B
# draft's corpora serve as they are), then its tau on the `repos` set at 16k / 32k. The classic
# draft's tau and the 1.5B's benchmark rows follow in bench/gpu/qwen15_chain.sh, which runs this.
# Needs: /tmp/models/parts (qwen15.gguf parts), /tmp/data/corpus_qwen2, /tmp/data/repos.
# STEPS1 / STEPS2 / TIME_LIMIT size the run.
source /tmp/src/bench/gpu/device_env.sh
Q15=$(joined_model qwen15.gguf)
mkdir -p /tmp/abl_out
log "qwen 1.5B draft training started"
OUT=/tmp/abl_out python3 bench/train/gpu_ablation.py --model "$Q15" --runs /tmp/runs \
  --arm q15=/tmp/data/corpus_qwen2 --eval repos=/tmp/data/repos \
  --contexts 16384,32704 --docs 12 --trees "4,4;4,16,16,16,16" -- \
  --stage1-steps "${STEPS1:-2400}" --stage2-steps "${STEPS2:-300}" --batch-size 8 --seq-len 1024 \
  --long-len 16384 --long-batch-size 1 --lr1 5e-4 --lr2 5e-5 --window 512 --seed 11 --distill 1.0 \
  --eval-every 500 --eval-seqs 8 --eval-len 4096 --save-every 500 --time-limit "${TIME_LIMIT:-600}" \
  > /tmp/abl_out/driver.log 2>&1
log "qwen 1.5B draft training exit $?"
