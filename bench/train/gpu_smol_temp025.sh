#!/usr/bin/env bash
# On the GPU machine, after background_checks.sh (SmolLM2 joined, package built): the SmolLM2
# draft's distillation temperature, 0.25 against 0.5 (the shipped draft's), at equal budget, both
# arms continuing the shipped draft on corpus C at once on the one GPU; held-out loss on the books,
# then tau on 16 books documents with the packaged tree [6,6,6] and the 69-node tree.
# Needs /tmp/data/{C,books} (data.py prepare outputs).
source /tmp/src/bench/gpu/device_env.sh
cd /tmp/src
SHIPPED=models/smollm2-135m-instruct-longspec
cp /tmp/data/books/heldout_long.npz /tmp/data/C/heldout_long.npz
BOOKS=books/debian-handbook/sect.apt-get.html,books/debian-handbook/sect.power-management.html
BOOKS=$BOOKS,books/debian-handbook/sect.virtualization.html,books/developers-reference/beyond-pkging.html
BOOKS=$BOOKS,books/postgresql-doc-15/ddl-rowsecurity.html,books/postgresql-doc-15/functions-formatting.html
BOOKS=$BOOKS,books/postgresql-doc-15/monitoring-locks.html,books/postgresql-doc-15/planner-stats.html
BOOKS=$BOOKS,books/python-django-doc/ref/forms/fields.html,books/python-django-doc/topics/async.html
BOOKS=$BOOKS,books/python-django-doc/topics/auth/index.html,books/python-django-doc/topics/db/queries.html
BOOKS=$BOOKS,books/rust-doc/ch05-03-method-syntax.html,books/rust-doc/ch10-02-traits.html
BOOKS=$BOOKS,books/rust-doc/ch13-02-iterators.html,books/rust-doc/ch16-04-extensible-concurrency-sync-and-send.html
mkdir -p /tmp/abl_out
log "temperature ablation started"
OUT=/tmp/abl_out python3 bench/train/gpu_ablation.py --model "$SMOL" --runs /tmp/runs \
  --arm t05=/tmp/data/C --arm t025=/tmp/data/C --arm-args t05="--distill-temperature 0.5" \
  --arm-args t025="--distill-temperature 0.25" --baseline shipped=$SHIPPED \
  --eval books=/tmp/data/books:$BOOKS --docs 16 --contexts 1024,4096,8128 \
  --trees "6,6,6;4,16,16,16,16" -- \
  --init $SHIPPED --stage1-steps 1400 --stage2-steps 400 --batch-size 16 --seq-len 1024 --long-len 8192 \
  --long-batch-size 2 --lr1 1.5e-4 --lr2 5e-5 --window 512 --seed 8 --distill 1.0 \
  --eval-every 450 --eval-seqs 8 --eval-len 4096 --save-every 1000 --time-limit 330 > /tmp/abl_out/driver.log 2>&1
log "temperature ablation exit $?"
touch /tmp/bgout/abl_done
