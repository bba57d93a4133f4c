#!/usr/bin/env bash
# On the GPU machine, while model parts travel in later calls: everything of one session's GPU work
# chained in the background, one GPU user at a time (timings are not shared with training), so
# that the calls in between only carry parts and poll. Steps, each after the one before:
#   1. waits for background_build.sh; joins SmolLM2 (its parts in /tmp/models/parts);
#   2. unless SKIP_CPP=1: the C++ GPU tests and compute-sanitizer (tests/run_gpu.sh tests sanitize);
#   3. the Python GPU tests named in PYTESTS (default: every file with GPU tests);
#   4. bench_gpu.py on SmolLM2 (SMOL_BENCH_ARGS), then /tmp/bgout/smol_bench_done;
#   5. when /tmp/bgout/train.sh exists (written by a later call, once the Qwen GGUF parts, corpus
#      and draft are there; waits up to 20 minutes for it): runs it (training, evaluation, the Qwen
#      bench), then /tmp/bgout/all_done.
# Progress lines go to /tmp/bgout/progress; logs and results under /tmp/bgout.
#   bash bench/gpu/background_checks.sh            # starts it and returns
#   bash bench/gpu/background_checks.sh --status   # how far it got
set -uo pipefail
if [ "${1:-}" = "--status" ]; then
  cat /tmp/bgout/progress 2>/dev/null; tail -2 /tmp/bg/build.log 2>/dev/null; exit 0
fi
if [ "${1:-}" != "--run" ]; then
  mkdir -p /tmp/bgout
  setsid nohup env SKIP_CPP="${SKIP_CPP:-}" PYTESTS="${PYTESTS:-}" SMOL_BENCH_ARGS="${SMOL_BENCH_ARGS:-}" \
    bash /tmp/src/bench/gpu/background_checks.sh --run >> /tmp/bgout/checks.log 2>&1 < /dev/null &
  echo "background checks started"
  exit 0
fi
cd /tmp/src
log() { echo "[$(date +%T)] $*" >> /tmp/bgout/progress; }
for _ in $(seq 1 240); do [ -e /tmp/bg/done ] || [ -e /tmp/bg/failed ] && break; sleep 5; done
[ -e /tmp/bg/done ] || { log "build not done"; exit 1; }
log "build done"
export PYTHONPATH=/tmp/lsite:/tmp/site LONGSPEC_CACHE=/tmp/lscache PYTHONUNBUFFERED=1
SMOL=/tmp/lscache/models/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p /tmp/lscache/models
[ -e "$SMOL" ] || python3 /tmp/models/parts.py join /tmp/models/parts SmolLM2-135M-Instruct.Q4_1.gguf "$SMOL"
if [ -z "${SKIP_CPP:-}" ]; then
  BUILD=/tmp/build_gpu OUT=/tmp/bgout/cpp bash tests/run_gpu.sh tests sanitize > /tmp/bgout/cpp_tests.txt 2>&1
  log "C++ GPU tests + sanitizers: $(grep -E 'PASSED|FAILED|exit|SUMMARY' /tmp/bgout/cpp_tests.txt | tr '\n' ' ')"
fi
pytests=${PYTESTS:-tests/python/test_gpu.py tests/python/test_draft_head.py tests/python/test_request_isolation.py}
# shellcheck disable=SC2086 # a list of files
timeout 900 python3 -m pytest -q -m gpu -p no:cacheprovider $pytests > /tmp/bgout/pytest_gpu.log 2>&1
log "pytest gpu exit $?: $(tail -1 /tmp/bgout/pytest_gpu.log)"
# shellcheck disable=SC2086 # SMOL_BENCH_ARGS is a list of options
timeout 900 python3 bench/bench_gpu.py --out-dir /tmp/bgout/bench_smollm2 --models smollm2-135m --smollm2 "$SMOL" \
  --work /tmp/longspec_bench ${SMOL_BENCH_ARGS:-} > /tmp/bgout/bench_smollm2.log 2>&1
log "bench smollm2 exit $?"
touch /tmp/bgout/smol_bench_done
for _ in $(seq 1 600); do [ -e /tmp/bgout/train.sh ] && break; sleep 2; done
[ -e /tmp/bgout/train.sh ] || { log "no train.sh: stopping"; exit 0; }
log "train.sh started"
bash /tmp/bgout/train.sh > /tmp/bgout/train_sh.log 2>&1
log "train.sh exit $?"
touch /tmp/bgout/all_done
