#!/usr/bin/env bash
# On the GPU machine, started in the background right after background_build.sh (the calls in
# between carry model parts and poll): one session's GPU work for issue 12's Qwen2.5-Coder-1.5B
# rows and the checks of the kernels changed without a card, ordered so that nothing timed shares
# the GPU with anything else:
#   1. the C++ GPU tests and compute-sanitizer, then the Python GPU tests (correctness only, so
#      the draft's training may share the GPU with them);
#   2. once /tmp/flags/q15_ready (the 1.5B GGUF's parts and the corpora are here): the 1.5B
#      LongSpec draft's training and tau (bench/train/gpu_qwen15_draft.sh),
#      while the CPU builds cuda_ops_bench with OLD_SPECULATION (a file, when carried) for the A/B;
#   3. once /tmp/flags/q05_ready (the 0.5B GGUF's parts): the classic draft's tau, then, alone on
#      the GPU, bench_gpu.py on the 1.5B (plain, the new draft with the 0.5B draft's subset head,
#      the classic 0.5B draft; trees [4,4], [4,4,4,2], [4,16,16,16,16] and auto), on the 0.5B and
#      on SmolLM2 at their defaults, the tree-growth A/B at the packaged drafts' head sizes, and
#      SmolLM2's tree="auto" with a draft that carries no tree at 512-token requests.
# Progress lines in /tmp/bgout/progress, results under /tmp/bgout.
#   bash bench/gpu/qwen15_chain.sh            # starts it and returns
#   bash bench/gpu/qwen15_chain.sh --status   # how far it got
set -uo pipefail
if [ "${1:-}" = "--status" ]; then
  cat /tmp/bgout/progress 2>/dev/null; tail -2 /tmp/bg/build.log 2>/dev/null
  tail -c 300 /tmp/abl_out/driver.log 2>/dev/null; echo; exit 0
fi
if [ "${1:-}" != "--run" ]; then
  mkdir -p /tmp/bgout /tmp/flags
  setsid nohup env STEPS1="${STEPS1:-}" STEPS2="${STEPS2:-}" TIME_LIMIT="${TIME_LIMIT:-}" \
    OLD_SPECULATION="${OLD_SPECULATION:-}" bash /tmp/src/bench/gpu/qwen15_chain.sh --run \
    >> /tmp/bgout/chain.log 2>&1 < /dev/null &
  echo "chain started"
  exit 0
fi
for _ in $(seq 1 240); do [ -e /tmp/bg/done ] || [ -e /tmp/bg/failed ] && break; sleep 5; done
mkdir -p /tmp/bgout
[ -e /tmp/bg/done ] || { echo "[$(date +%T)] build not done" >> /tmp/bgout/progress; exit 1; }
source /tmp/src/bench/gpu/device_env.sh
log "build done"
mkdir -p /tmp/lscache/models
[ -e "$SMOL" ] || python3 /tmp/models/parts.py join /tmp/models/parts SmolLM2-135M-Instruct.Q4_1.gguf "$SMOL"
wait_for() {  # wait_for FLAG SECONDS
  for _ in $(seq 1 "$2"); do [ -e "/tmp/flags/$1" ] && return 0; sleep 1; done
  log "no $1 after $2 s"
  return 1
}

# 1. Correctness, in the background.
(
  BUILD=/tmp/build_gpu OUT=/tmp/bgout/cpp bash tests/run_gpu.sh tests sanitize > /tmp/bgout/cpp_tests.txt 2>&1
  log "C++ GPU tests + sanitizers: $(grep -E 'PASSED|FAILED|exit|SUMMARY' /tmp/bgout/cpp_tests.txt | tr '\n' ' ')"
  timeout 900 python3 -m pytest -q -m gpu -p no:cacheprovider tests/python/test_gpu.py \
    tests/python/test_draft_head.py tests/python/test_request_isolation.py > /tmp/bgout/pytest_gpu.log 2>&1
  log "pytest gpu exit $?: $(tail -1 /tmp/bgout/pytest_gpu.log)"
  touch /tmp/flags/checks_done
) &

# 2. The 1.5B draft (and the old tree growth's benchmark binary, built meanwhile).
if [ -n "${OLD_SPECULATION:-}" ] && [ -e "$OLD_SPECULATION" ]; then
  (
    rm -rf /tmp/src_old && cp -r /tmp/src /tmp/src_old && cp "$OLD_SPECULATION" /tmp/src_old/cuda/speculation.cuh
    cd /tmp/src_old && cmake -S . -B /tmp/build_old -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGSPEC_CUDA=ON \
      -DLONGSPEC_CUDA_ARCHITECTURES=90a -DLONGSPEC_BUILD_BENCH=ON -DLONGSPEC_BUILD_TESTS=OFF > /tmp/bgout/old_build.log 2>&1 &&
      nice cmake --build /tmp/build_old -j 8 --target cuda_ops_bench >> /tmp/bgout/old_build.log 2>&1
    log "old cuda_ops_bench build exit $?"
  ) &
fi
if wait_for q15_ready 1500; then
  bash bench/train/gpu_qwen15_draft.sh
fi
wait_for checks_done 900

# 3. Alone on the GPU from here.
wait_for q05_ready 600 || exit 0
q15=$(joined_model qwen15.gguf)
q05=$(joined_model qwen05.gguf)
python3 -m longspec eval-draft --target "$q15" --draft "$q05" --data /tmp/data/repos \
  --contexts 16384,32704 --trees "4,4;4,16,16,16,16" --docs 12 --new-tokens 64 --device cuda \
  --out /tmp/bgout/tau_classic05_repos.json > /tmp/bgout/tau_classic05_repos.log 2>&1
log "classic 0.5B draft tau exit $?"
draft=/tmp/runs/q15/draft
variant=()
if [ -e "$draft/config.json" ]; then
  # The 0.5B draft's subset head (its ids: the two models share one tokenizer) on a copy.
  rm -rf /tmp/drafts/q15_head32k && mkdir -p /tmp/drafts && cp -r "$draft" /tmp/drafts/q15_head32k
  cp models/qwen2.5-coder-0.5b-instruct-longspec/head_tokens.json /tmp/drafts/q15_head32k/
  variant=(--qwen15-draft /tmp/drafts/q15_head32k --draft-variant "qwen2.5-coder-1.5b:full-head=$draft")
fi
timeout 900 python3 bench/bench_gpu.py --out-dir /tmp/bgout/bench_qwen15 --models qwen2.5-coder-1.5b --qwen15 "$q15" \
  "${variant[@]}" --draft-variant "qwen2.5-coder-1.5b:classic-0.5b=$q05" \
  --contexts qwen2.5-coder-1.5b=16384,32768 --work /tmp/longspec_bench --hf= --tree 4,4 \
  --extra-trees "4,4,4,2;4,16,16,16,16" --phase-models= --no-plot > /tmp/bgout/bench_qwen15.log 2>&1
log "bench qwen 1.5B exit $?"
bench_qwen05 bench_qwen05 4,4 ""
SMOL_BENCH_ARGS="--hf= --tree 6,6,6 --phase-models= --no-plot" bench_smol bench_smollm2
b=/tmp/build_gpu/cuda_ops_bench
old=/tmp/build_old/cuda_ops_bench
for shape in "6 16384 6" "4 32768 4" "6 49152 6" "4 151936 4"; do
  for round in 1 2; do
    # shellcheck disable=SC2086 # the shape is three arguments
    echo "== new, round $round: tree-expand $shape" >> /tmp/bgout/tree_expand_ab.txt
    $b tree-expand $shape >> /tmp/bgout/tree_expand_ab.txt 2>&1
    if [ -x "$old" ]; then
      echo "== old, round $round: tree-expand $shape" >> /tmp/bgout/tree_expand_ab.txt
      $old tree-expand $shape >> /tmp/bgout/tree_expand_ab.txt 2>&1
    fi
  done
done
log "tree-expand A/B done"
# tree="auto" with a draft that carries no tree (the policy explores), 512-token requests.
rm -rf /tmp/drafts/smol_notree && cp -r models/smollm2-135m-instruct-longspec /tmp/drafts/smol_notree
python3 - <<'EOF'
import json
p = "/tmp/drafts/smol_notree/config.json"
c = json.load(open(p))
c.pop("tree_shape", None)
json.dump(c, open(p, "w"), indent=2)
EOF
SMOL_BENCH_ARGS="--hf= --tree 6,6,6 --phase-models= --no-plot --new-tokens 512 --contexts smollm2-135m=2048,7600 \
  --draft-variant smollm2-135m:notree=/tmp/drafts/smol_notree" bench_smol bench_smollm2_auto512
touch /tmp/bgout/all_done
log "all done"
