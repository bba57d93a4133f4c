#!/usr/bin/env bash
# On the GPU machine, after background_build.sh (the Python package in /tmp/lsite; SmolLM2's parts
# in /tmp/models/parts): the SmolLM2 draft trained on corpus C plus the target's own greedy
# continuations (`python -m longspec.training.data selfgen`: 768-token prompts cut from C's rows,
# 256 new tokens, about 30% of stage-1 rows), with the command of the 2026-12-02 temperature
# ablation's T = 0.5 arm (seed 8, 1400 + 400 steps from the shipped draft). That arm's draft
# (trained on C alone, carried to /tmp/drafts/t05) and the shipped draft are evaluated beside it:
# tau on the same 16 books documents, [6,6,6] and the 69-node tree.
# Needs /tmp/data/{C,books} (data.py prepare outputs) and /tmp/drafts/t05.
set -uo pipefail
mkdir -p /tmp/bgout
log() { echo "[$(date +%T)] $*" >> /tmp/bgout/progress; }
for _ in $(seq 1 240); do [ -e /tmp/bg/done ] || [ -e /tmp/bg/failed ] && break; sleep 2; done
[ -e /tmp/bg/done ] || { log "build not done"; exit 1; }
cd /tmp/src
export PYTHONPATH=/tmp/lsite:/tmp/site LONGSPEC_CACHE=/tmp/lscache PYTHONUNBUFFERED=1
SMOL=/tmp/lscache/models/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p /tmp/lscache/models
[ -e "$SMOL" ] || python3 /tmp/models/parts.py join /tmp/models/parts SmolLM2-135M-Instruct.Q4_1.gguf "$SMOL"
SHIPPED=models/smollm2-135m-instruct-longspec
log "selfgen started"
python3 -m longspec.training.data selfgen --data /tmp/data/C --out /tmp/data/G --target "$SMOL" \
  --rows 4096 --new-tokens 256 --mix 0.3 --batch-size 512 --seed 8 --time-limit 100 \
  > /tmp/bgout/selfgen.json 2> /tmp/bgout/selfgen.log
log "selfgen exit $?: $(tr -d '\n ' < /tmp/bgout/selfgen.json | head -c 400)"
cp /tmp/data/books/heldout_long.npz /tmp/data/G/heldout_long.npz
BOOKS=books/debian-handbook/sect.apt-get.html,books/debian-handbook/sect.power-management.html
BOOKS=$BOOKS,books/debian-handbook/sect.virtualization.html,books/developers-reference/beyond-pkging.html
BOOKS=$BOOKS,books/postgresql-doc-15/ddl-rowsecurity.html,books/postgresql-doc-15/functions-formatting.html
BOOKS=$BOOKS,books/postgresql-doc-15/monitoring-locks.html,books/postgresql-doc-15/planner-stats.html
BOOKS=$BOOKS,books/python-django-doc/ref/forms/fields.html,books/python-django-doc/topics/async.html
BOOKS=$BOOKS,books/python-django-doc/topics/auth/index.html,books/python-django-doc/topics/db/queries.html
BOOKS=$BOOKS,books/rust-doc/ch05-03-method-syntax.html,books/rust-doc/ch10-02-traits.html
BOOKS=$BOOKS,books/rust-doc/ch13-02-iterators.html,books/rust-doc/ch16-04-extensible-concurrency-sync-and-send.html
mkdir -p /tmp/abl_out
log "training started"
OUT=/tmp/abl_out python3 bench/train/gpu_ablation.py --model "$SMOL" --runs /tmp/runs \
  --arm selfgen=/tmp/data/G --arm-args selfgen="--distill-temperature 0.5" \
  --baseline shipped=$SHIPPED --baseline t05=/tmp/drafts/t05 \
  --eval books=/tmp/data/books:$BOOKS --docs 16 --contexts 1024,4096,8128 \
  --trees "6,6,6;4,16,16,16,16" -- \
  --init $SHIPPED --stage1-steps 1400 --stage2-steps 400 --batch-size 16 --seq-len 1024 --long-len 8192 \
  --long-batch-size 2 --lr1 1.5e-4 --lr2 5e-5 --window 512 --seed 8 --distill 1.0 \
  --eval-every 450 --eval-seqs 8 --eval-len 4096 --save-every 1000 --time-limit 330 > /tmp/abl_out/driver.log 2>&1
log "selfgen ablation exit $?"
touch /tmp/bgout/selfgen_done
