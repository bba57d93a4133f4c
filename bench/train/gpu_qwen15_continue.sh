#!/usr/bin/env bash
# On the GPU machine, after bench/gpu/qwen15_chain.sh (its /tmp/runs/q15 draft, models and data):
# a further segment of the Qwen2.5-Coder-1.5B draft's training, from INIT (default the first
# segment's draft; the committed one: INIT=models/qwen2.5-coder-1.5b-instruct-longspec, shards and
# all) with SEED (default 12), lr 3e-4 then 5e-5 (STEPS1 / STEPS2 / TIME_LIMIT size it), into
# /tmp/runs/q15b, then its tau on the `repos` set at 16k / 32k with the first segment's trees.
source /tmp/src/bench/gpu/device_env.sh
Q15=$(joined_model qwen15.gguf)
mkdir -p /tmp/abl_out/q15b
log "qwen 1.5B second segment started"
python3 -m longspec train-draft --target "$Q15" --data /tmp/data/corpus_qwen2 --out /tmp/runs/q15b --no-resume \
  --device cuda --init "${INIT:-/tmp/runs/q15/draft}" --stage1-steps "${STEPS1:-1000}" --stage2-steps "${STEPS2:-150}" \
  --batch-size 8 --seq-len 1024 --long-len 16384 --long-batch-size 1 --lr1 3e-4 --lr2 5e-5 --window 512 --seed "${SEED:-12}" \
  --distill 1.0 --eval-every 500 --eval-seqs 8 --eval-len 4096 --save-every 1000 --time-limit "${TIME_LIMIT:-240}" \
  > /tmp/abl_out/q15b/stdout.log 2>&1
log "qwen 1.5B second segment exit $?"
cp /tmp/runs/q15b/train_log.jsonl /tmp/runs/q15b/draft/config.json /tmp/abl_out/q15b/
python3 -m longspec eval-draft --target "$Q15" --draft /tmp/runs/q15b/draft --data /tmp/data/repos \
  --contexts 16384,32704 --trees "4,4;4,16,16,16,16" --docs 12 --new-tokens 64 --device cuda \
  --out /tmp/abl_out/q15b/tau_q15b_repos.json > /tmp/abl_out/q15b/tau.log 2>&1
log "qwen 1.5B second segment tau exit $?"
touch /tmp/bgout/continue_done
