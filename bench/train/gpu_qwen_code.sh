#!/usr/bin/env bash
# On the GPU machine (run by bench/gpu/background_checks.sh as /tmp/bgout/train.sh, after the
# SmolLM2 bench): the Qwen2.5-Coder-0.5B draft continued on the multi-language corpus (code in Go,
# Rust, C++, Perl, Ruby, JS/TS + Python stdlib and docs + man/info + manuals; `data.py prepare
# --sources stdlib,pydocs,man,info,manuals,code`), evaluated beside the shipped draft on the corpus's
# held-out split (code only, and every document), then bench_gpu.py on Qwen with the new draft,
# the shipped one and the new one with a 32768-token head as variants.
# Needs: /tmp/models/parts (qwen05.gguf parts), /tmp/data/corpus_qwen, /tmp/heads/qwen32k/head_tokens.json,
# the shipped draft in /tmp/src/models/.
set -uo pipefail
cd /tmp/src
export PYTHONPATH=/tmp/lsite:/tmp/site LONGSPEC_CACHE=/tmp/lscache PYTHONUNBUFFERED=1
Q=/tmp/models/qwen05.gguf
[ -e "$Q" ] || python3 /tmp/models/parts.py join /tmp/models/parts qwen05.gguf "$Q"
SHIPPED=models/qwen2.5-coder-0.5b-instruct-longspec
mkdir -p /tmp/abl_out
OUT=/tmp/abl_out python3 bench/train/gpu_ablation.py --model "$Q" --runs /tmp/runs \
  --arm code=/tmp/data/corpus_qwen --baseline shipped=$SHIPPED \
  --eval code=/tmp/data/corpus_qwen:code/ --eval all=/tmp/data/corpus_qwen \
  --contexts 4096,16384 --docs 14 --trees 4,16,16,16,16 -- \
  --init $SHIPPED --stage1-steps 2600 --stage2-steps 500 --batch-size 8 --seq-len 1024 \
  --long-len 16384 --long-batch-size 1 --lr1 2e-4 --lr2 5e-5 --window 512 --seed 5 --distill 1.0 \
  --eval-every 500 --eval-seqs 8 --eval-len 4096 --save-every 1000 --time-limit 380 > /tmp/abl_out/driver.log 2>&1
echo "ablation exit $?"
touch /tmp/bgout/train_done
NEW=/tmp/runs/code/draft
mkdir -p /tmp/heads/new_head32k
cp $NEW/config.json $NEW/model.safetensors /tmp/heads/new_head32k/
cp /tmp/heads/qwen32k/head_tokens.json /tmp/heads/new_head32k/
python3 bench/bench_gpu.py --out-dir /tmp/bgout/bench_qwen --models qwen2.5-coder-0.5b --qwen05 "$Q" \
  --qwen05-draft $NEW --draft-variant qwen2.5-coder-0.5b:shipped=$SHIPPED \
  --draft-variant qwen2.5-coder-0.5b:new_head32k=/tmp/heads/new_head32k \
  --contexts qwen2.5-coder-0.5b=16384,32768 --hf= --work /tmp/longspec_bench > /tmp/bgout/bench_qwen.log 2>&1
echo "qwen bench exit $?"
