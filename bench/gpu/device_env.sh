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
# qwen05_checks NAME TREE EXTRA_TREES: when the Qwen2.5-Coder-0.5B GGUF's parts are here,
# bench_gpu.py on it at 16k and 32k (TREE and the ';'-separated EXTRA_TREES, into /tmp/bgout/NAME)
# and its GPU tests (speculative == plain at 16k, logits against the CPU engine).
qwen05_checks() {
  [ -e /tmp/models/parts/qwen05.gguf.sha256 ] || return 0
  local q
  q=$(joined_model qwen05.gguf)
  timeout 600 python3 bench/bench_gpu.py --out-dir "/tmp/bgout/$1" --models qwen2.5-coder-0.5b \
    --qwen05 "$q" --contexts qwen2.5-coder-0.5b=16384,32768 --work /tmp/longspec_bench --hf= --tree "$2" \
    --extra-trees "$3" --phase-models= --no-plot > "/tmp/bgout/$1.log" 2>&1
  log "$1 exit $?"
  LONGSPEC_QWEN05_GGUF="$q" timeout 400 python3 -m pytest -q -s -m gpu -p no:cacheprovider \
    tests/python/test_gpu.py -k "qwen_coder_at_16k or track_the_cpu" > /tmp/bgout/pytest_qwen.log 2>&1
  log "pytest qwen exit $?: $(tail -1 /tmp/bgout/pytest_qwen.log)"
}
