#!/usr/bin/env bash
# On the GPU machine (as /tmp/bgout/train.sh of bench/gpu/background_checks.sh, or from
# bench/gpu/qwen15_chain.sh): the first LongSpec draft of Qwen2.5-Coder-1.5B-Instruct (Q4_K_M,
# sha256 cc324af0...b046; `parts.py split qwen15.gguf DIR --mb 54` gives 20 parts), trained from
# scratch, distilled, with the exact LongSpec architecture (the MLP as wide as the target's), on
# the corpus of every training source (the two Qwen models share one tokenizer, so the 0.5B
# draft's corpora serve as they are), then its tau on the `repos` set at 16k / 32k; unless
# QWEN15_BENCH=0, also tau of the classic draft (Qwen2.5-Coder-0.5B drafting whole, when its GGUF
# is there too) and bench_gpu.py's 1.5B rows.
# Needs: /tmp/models/parts (qwen15.gguf parts; qwen05.gguf parts optional), /tmp/data/corpus_qwen2,
# /tmp/data/repos. STEPS1 / STEPS2 / TIME_LIMIT size the run.
source /tmp/src/bench/gpu/device_env.sh
Q15=$(joined_model qwen15.gguf)
Q05=/tmp/models/qwen05.gguf  # the classic draft, when its parts travelled too
[ ! -e /tmp/models/parts/qwen05.gguf.sha256 ] || Q05=$(joined_model qwen05.gguf)
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
[ "${QWEN15_BENCH:-1}" = 0 ] && exit 0
if [ -e "$Q05" ]; then
  python3 -m longspec eval-draft --target "$Q15" --draft "$Q05" --data /tmp/data/repos \
    --contexts 16384,32704 --trees "4,4;4,16,16,16,16" --docs 12 --new-tokens 64 --device cuda \
    --out /tmp/abl_out/tau_classic05_repos.json > /tmp/abl_out/tau_classic05_repos.log 2>&1
  log "classic 0.5B draft tau exit $?"
fi
classic=()
[ -e "$Q05" ] && classic=(--draft-variant "qwen2.5-coder-1.5b:classic05=$Q05")
timeout 900 python3 bench/bench_gpu.py --out-dir /tmp/bgout/bench_qwen15 --models qwen2.5-coder-1.5b --qwen15 "$Q15" \
  --qwen15-draft /tmp/runs/q15/draft "${classic[@]}" \
  --contexts qwen2.5-coder-1.5b=16384,32768 --hf= --work /tmp/longspec_bench > /tmp/bgout/bench_qwen15.log 2>&1
log "bench qwen 1.5B exit $?"
