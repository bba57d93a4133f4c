# Sourced by the scripts that run on the GPU machine from /tmp/src (background_build.sh's snapshot
# of the tree), as bench/gpu/background_checks.sh's train.sh or after it: the environment its
# build left (the package in /tmp/lsite, the wheels in /tmp/site), a progress log, and the models
# joined from their carried parts.
set -uo pipefail
cd /tmp/src
export PYTHONPATH=/tmp/lsite:/tmp/site LONGSPEC_CACHE=/tmp/lscache PYTHONUNBUFFERED=1
SMOL=/tmp/lscache/models/SmolLM2-135M-Instruct.Q4_1.gguf  # joined by background_checks.sh
log() { echo "[$(date +%T)] $*" >> /tmp/bgout/progress; }
# joined_model NAME: prints /tmp/models/NAME, joined from /tmp/models/parts (sha256 checked) the
# first time.
joined_model() {
  local dest=/tmp/models/$1
  [ -e "$dest" ] || python3 /tmp/models/parts.py join /tmp/models/parts "$1" "$dest" >&2
  echo "$dest"
}
# bench_smol NAME [VAR=VALUE ...]: bench_gpu.py on SmolLM2 with the chain's SMOL_BENCH_ARGS and
# the given environment, into /tmp/bgout/NAME (and NAME.log).
bench_smol() {
  local name=$1
  shift
  # shellcheck disable=SC2086 # SMOL_BENCH_ARGS is a list of options
  env "$@" timeout 600 python3 bench/bench_gpu.py --out-dir "/tmp/bgout/$name" --models smollm2-135m --smollm2 "$SMOL" \
    --work /tmp/longspec_bench ${SMOL_BENCH_ARGS:-} > "/tmp/bgout/$name.log" 2>&1
  log "$name exit $?"
}
# bench_qwen05 NAME TREE EXTRA_TREES [VAR=VALUE ...]: when the Qwen2.5-Coder-0.5B GGUF's parts are
# here, bench_gpu.py on it at 16k and 32k (TREE and the ';'-separated EXTRA_TREES, none if empty)
# with the given environment, into /tmp/bgout/NAME.
bench_qwen05() {
  [ -e /tmp/models/parts/qwen05.gguf.sha256 ] || return 0
  local name=$1 tree=$2 extra=$3 q
  shift 3
  q=$(joined_model qwen05.gguf)
  local extra_args=()
  [ -n "$extra" ] && extra_args=(--extra-trees "$extra")
  env "$@" timeout 600 python3 bench/bench_gpu.py --out-dir "/tmp/bgout/$name" --models qwen2.5-coder-0.5b --qwen05 "$q" \
    --contexts qwen2.5-coder-0.5b=16384,32768 --work /tmp/longspec_bench --hf= --tree "$tree" "${extra_args[@]}" \
    --phase-models= --no-plot > "/tmp/bgout/$name.log" 2>&1
  log "$name exit $?"
}
# qwen05_checks NAME TREE EXTRA_TREES: bench_qwen05, then Qwen-Coder's GPU tests (speculative ==
# plain at 16k, logits against the CPU engine), when its parts are here.
qwen05_checks() {
  [ -e /tmp/models/parts/qwen05.gguf.sha256 ] || return 0
  bench_qwen05 "$1" "$2" "$3"
  LONGSPEC_QWEN05_GGUF="$(joined_model qwen05.gguf)" timeout 400 python3 -m pytest -q -s -m gpu -p no:cacheprovider \
    tests/python/test_gpu.py -k "qwen_coder_at_16k or track_the_cpu" > /tmp/bgout/pytest_qwen.log 2>&1
  log "pytest qwen exit $?: $(tail -1 /tmp/bgout/pytest_qwen.log)"
}
# smol_timeline NAME [VAR=VALUE ...]: the CUPTI timeline of a whole real SmolLM2 generation at ~8k
# (tree TRACE_TREE, default 6,6,6) with the given environment: /tmp/bgout/timeline_NAME.txt (kernel
# by kernel per replayed segment) and rounds_NAME.txt (the rounds' segments).
smol_timeline() {
  local name=$1 cuda=${CUDA_HOME:-/usr/local/cuda}
  shift
  [ -e /tmp/libkernel_trace.so ] || g++ -O2 -shared -fPIC -o /tmp/libkernel_trace.so bench/gpu/kernel_trace.cc \
    -I"$cuda/include" -L"$cuda/lib64" -L"$cuda/lib" -lcupti -Wl,-rpath,"$cuda/lib64:$cuda/lib"
  local csv=/tmp/bgout/trace_$name.csv
  env "$@" LD_PRELOAD=/tmp/libkernel_trace.so KERNEL_TRACE_CSV="$csv" timeout 300 python3 bench/gpu/profile_round.py \
    smollm2-135m-shape 8000 --model "$SMOL" --draft models/smollm2-135m-instruct-longspec --tree "${TRACE_TREE:-6,6,6}" \
    --trace --whole 2> "$csv.err"
  python3 bench/gpu/profile_round.py --timeline "$csv" > "/tmp/bgout/timeline_$name.txt"
  python3 bench/gpu/profile_round.py --rounds "$csv" > "/tmp/bgout/rounds_$name.txt"
  rm -f "$csv"
}
# The 16 documents of the books set (long technical prose no SmolLM2 draft trained on) that the
# draft ablations measure tau on.
BOOKS16=books/debian-handbook/sect.apt-get.html,books/debian-handbook/sect.power-management.html
BOOKS16=$BOOKS16,books/debian-handbook/sect.virtualization.html,books/developers-reference/beyond-pkging.html
BOOKS16=$BOOKS16,books/postgresql-doc-15/ddl-rowsecurity.html,books/postgresql-doc-15/functions-formatting.html
BOOKS16=$BOOKS16,books/postgresql-doc-15/monitoring-locks.html,books/postgresql-doc-15/planner-stats.html
BOOKS16=$BOOKS16,books/python-django-doc/ref/forms/fields.html,books/python-django-doc/topics/async.html
BOOKS16=$BOOKS16,books/python-django-doc/topics/auth/index.html,books/python-django-doc/topics/db/queries.html
BOOKS16=$BOOKS16,books/rust-doc/ch05-03-method-syntax.html,books/rust-doc/ch10-02-traits.html
BOOKS16=$BOOKS16,books/rust-doc/ch13-02-iterators.html,books/rust-doc/ch16-04-extensible-concurrency-sync-and-send.html
# smol_draft_ablation ARM_OPTIONS...: gpu_ablation.py on SmolLM2 with the recipe of the 2026-12-02
# ablations: every arm (--arm, --arm-args, extra --baseline) continues the shipped draft with one
# command (seed 8, 1400 + 400 steps, lr 1.5e-4 / 5e-5, --distill 1.0, at most 330 s), then tau of
# the arms, the shipped draft and the baselines on BOOKS16 at 1k / 4k / 8k with [6,6,6] and the
# 69-node tree. Needs /tmp/data/books; writes /tmp/abl_out (driver.log, summary.json, ...).
smol_draft_ablation() {
  local shipped=models/smollm2-135m-instruct-longspec
  mkdir -p /tmp/abl_out
  OUT=/tmp/abl_out python3 bench/train/gpu_ablation.py --model "$SMOL" --runs /tmp/runs "$@" \
    --baseline shipped=$shipped --eval "books=/tmp/data/books:$BOOKS16" --docs 16 --contexts 1024,4096,8128 \
    --trees "6,6,6;4,16,16,16,16" -- \
    --init $shipped --stage1-steps 1400 --stage2-steps 400 --batch-size 16 --seq-len 1024 --long-len 8192 \
    --long-batch-size 2 --lr1 1.5e-4 --lr2 5e-5 --window 512 --seed 8 --distill 1.0 \
    --eval-every 450 --eval-seqs 8 --eval-len 4096 --save-every 1000 --time-limit 330 > /tmp/abl_out/driver.log 2>&1
}
