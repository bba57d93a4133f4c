#!/usr/bin/env bash
# On the GPU machine (a fresh one is fine; carry .deps and .whl): GEMM changes (the tree's, or
# pending patches PATCH applied in order to a snapshot of it where it lacks them) built once,
# tested and timed against their switches in one background chain, then the real models with the
# engine as it would land. Every step under a timeout, one GPU user at a time:
#   1. the C++ build; GoogleTest CudaLinear.*; compute-sanitizer's CHECKS (default memcheck
#      racecheck synccheck) on SANITIZE (a GoogleTest filter, default
#      CudaLinear.BulkStreamSmallCaseForSanitizers); the whole GoogleTest suite;
#   2. `cuda_ops_bench gemm-decode` with every switch at its default, with each of AB's settings,
#      and at the defaults again (the Python package builds meanwhile);
#   3. timelines of plain steps and [TREE] speculation rounds of the random-weight shapes at the
#      defaults and with each of AB's settings (VAR=VALUE, several joined by '+'; a trailing
#      :PHASES names its phases, e.g. LONGSPEC_GEMM_BULK_ROWS_MAX=8:speculative, and a trailing
#      @REGEX keeps the shapes whose name matches, e.g. LONGSPEC_GEMM_BULK_SPREAD=150:plain@llama3),
#      and bench_gpu.py's 1.5B shape at those that time plain steps of it (SHAPES: "shape context;..." to time, default
#      the 1.5B, 0.5B and Llama-8B shapes at 32k and SmolLM2's at 8k: ~45 s each a setting);
#   4. once a later call writes /tmp/flags/real_go (its content: the VAR=VALUE settings the real
#      models run with, empty for the defaults): the real models from their carried parts
#      (/tmp/models/parts; the drafts' weights under /tmp/models/drafts/<directory in models/>/): the
#      Python GPU tests, then bench_gpu.py on SmolLM2, the Qwen2.5-Coder 0.5B and 1.5B (each when
#      its parts are there).
# Progress in /tmp/bgout/stack/progress; every log and result under /tmp/bgout/stack.
#   CHECKS=memcheck AB="LONGSPEC_GEMM_BULK_NARROW=0+LONGSPEC_GEMM_BULK_ROWS_MAX=8" \
#     bash bench/gpu/bulk_stack_chain.sh            # snapshot to /tmp/src, starts in the background
#   echo > /tmp/flags/real_go                       # (any call) the real models at the defaults
#   bash bench/gpu/bulk_stack_chain.sh --status
set -uo pipefail
R=/tmp/bgout/stack
if [ "${1:-}" = "--status" ]; then
  cat $R/progress 2>/dev/null
  exit 0
fi
if [ "${1:-}" != "--run" ]; then
  rm -rf /tmp/src && mkdir -p /tmp/src $R /tmp/flags && cp -r . /tmp/src/
  PATCH=${PATCH:-} AB=${AB:-} CHECKS=${CHECKS-memcheck racecheck synccheck} TREE=${TREE:-4,4} \
    SANITIZE=${SANITIZE:-CudaLinear.BulkStreamSmallCaseForSanitizers} \
    SHAPES=${SHAPES:-qwen2.5-1.5b-shape 32768;qwen2.5-0.5b-shape 32768;smollm2-135m-shape 8192;llama3-8b-shape 32768} setsid nohup bash /tmp/src/bench/gpu/bulk_stack_chain.sh --run \
    > $R/chain.log 2>&1 < /dev/null &
  echo "chain started"
  exit 0
fi
cd /tmp/src
B=/tmp/build_gpu
log() { echo "[$(date +%T)] $*" >> $R/progress; }
ok() { echo "$(grep -c '^\[       OK' "$1") ok: $(grep -E '^\[  FAILED' "$1" | head -3 | tr '\n' ' ')"; }
# settings: "defaults" then each of AB's VAR=VALUE[:PHASES] settings (an env argument, a label and
# the timelines' phases each).
read -r -a settings <<< "defaults $AB"
env_of() { local s=${1%%[:@]*}; [ "$s" = defaults ] && echo "LONGSPEC_CHAIN=defaults" || echo "${s//+/ }"; }
label_of() { local s=${1%%[:@]*}; [ "$s" = defaults ] && echo defaults || echo "${s//LONGSPEC_/}" | tr 'A-Z=+' 'a-z__'; }
phases_of() { local s=${1%%@*}; case $s in *:*) echo "${s#*:}" | tr ',' ' ' ;; *) echo "plain speculative" ;; esac; }
shapes_of() {  # shapes_of SETTING: SHAPES' entries this setting times, one a line
  local filter='.'; case $1 in *@*) filter=${1#*@} ;; esac
  tr ';' '\n' <<< "$SHAPES" | grep -E -- "$filter"
}

# 1. Build and correctness.
for patch in ${PATCH:-}; do
  if git apply --check "$patch" 2> /dev/null; then
    git apply "$patch" || { log "patch $patch failed"; exit 1; }
    log "applied $patch"
  fi
done
BUILD=$B OUT=$R/cpp bash tests/run_gpu.sh > $R/build.txt 2>&1 || { log "build failed"; exit 1; }
log "C++ built"
timeout 300 $B/longspec_cuda_tests --gtest_filter='CudaLinear.*' > $R/cuda_tests_linear.log 2>&1
log "GoogleTest CudaLinear.* exit $? ($(ok $R/cuda_tests_linear.log))"
# The package on the CPU while the GPU tests run (nothing timed until it is done).
mkdir -p $R/py
(OUT=$R/py source bench/gpu/package_site.sh && touch $R/package_built) &
package=$!
for tool in ${CHECKS-memcheck racecheck synccheck}; do
  timeout 300 compute-sanitizer --tool $tool --error-exitcode 9 $B/longspec_cuda_tests \
    --gtest_filter="$SANITIZE" > $R/sanitizer_$tool.log 2>&1
  log "$tool exit $?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $R/sanitizer_$tool.log | head -2 | tr '\n' ' ')"
done
timeout 600 $B/longspec_cuda_tests > $R/cuda_tests_all.log 2>&1
log "GoogleTest all exit $? ($(ok $R/cuda_tests_all.log))"

wait $package
[ -e $R/package_built ] || { log "package build failed"; exit 1; }
export PYTHONPATH=/tmp/lsite:/tmp/site PYTHONUNBUFFERED=1
log "package built"

# 2. The GEMMs alone.
for s in "${settings[@]}" defaults; do
  n=$(ls $R/gemm_decode_*.txt 2> /dev/null | wc -l)
  env $(env_of "$s") timeout 120 $B/cuda_ops_bench gemm-decode > "$R/gemm_decode_$((n + 1))_$(label_of "$s").txt" 2>&1
  log "gemm-decode $s exit $?"
done

# 3. Steps and rounds.
for s in "${settings[@]}"; do
  l=$(label_of "$s")
  mapfile -t shapes < <(shapes_of "$s")
  [ ${#shapes[@]} -gt 0 ] || continue
  env $(env_of "$s") OUT=$R/trace_$l PHASES="$(phases_of "$s")" TREE="$TREE" timeout 500 bash bench/gpu/trace_steps.sh \
    "${shapes[@]}" > $R/trace_$l.log 2>&1
  log "trace $s exit $?"
done
for s in "${settings[@]}"; do
  case " $(phases_of "$s") " in *" plain "*) ;; *) continue ;; esac
  shapes_of "$s" | grep -q '^qwen2.5-1.5b-shape' || continue
  l=$(label_of "$s")
  env $(env_of "$s") timeout 600 python3 bench/bench_gpu.py --out-dir $R/bench_shape15_$l \
    --models qwen2.5-1.5b-shape --work /tmp/longspec_bench --hf= --phase-models= --no-plot --no-auto \
    > $R/bench_shape15_$l.log 2>&1
  log "bench 1.5B shape $s exit $?"
done
touch $R/timed

# 4. The real models.
for _ in $(seq 1 900); do [ -e /tmp/flags/real_go ] && break; sleep 2; done
[ -e /tmp/flags/real_go ] || { log "no real_go: stopping"; exit 0; }
read -r -a real_env < /tmp/flags/real_go
real_env=(LONGSPEC_CHAIN=real "${real_env[@]}")
log "real models with: ${real_env[*]}"
source bench/gpu/device_env.sh  # joined_model, SMOL, LONGSPEC_CACHE
log() { echo "[$(date +%T)] $*" >> $R/progress; }
joined() {  # joined NAME: the joined model's path, empty when its parts are not all here
  [ -e "/tmp/models/parts/$1.sha256" ] && joined_model "$1"
}
# The drafts' weights travel apart from the tree (over a call's 64 MiB with it): back into the
# snapshot's models/, where the Python GPU tests and bench_gpu.py look for them.
for d in /tmp/models/drafts/*/; do
  [ -d "$d" ] && cp "$d"* "models/$(basename "$d")/"
done
mkdir -p /tmp/lscache/models
smol=$SMOL
[ -e "$smol" ] || python3 /tmp/models/parts.py join /tmp/models/parts SmolLM2-135M-Instruct.Q4_1.gguf "$smol" \
  > $R/join_smol.log 2>&1
q05=$(joined qwen05.gguf)
q15=$(joined qwen15.gguf)
log "models: smol $(ls $smol 2> /dev/null) q05 ${q05:-none} q15 ${q15:-none}"
env "${real_env[@]}" LONGSPEC_QWEN05_GGUF="$q05" timeout 900 python3 -m pytest -q -m gpu -p no:cacheprovider \
  tests/python/test_gpu.py tests/python/test_draft_head.py tests/python/test_request_isolation.py \
  > $R/pytest_gpu.log 2>&1
log "pytest gpu exit $?: $(tail -1 $R/pytest_gpu.log)"
env "${real_env[@]}" timeout 600 python3 bench/bench_gpu.py --out-dir $R/bench_smollm2 --models smollm2-135m \
  --smollm2 "$smol" --work /tmp/longspec_bench --hf= --tree 6,6,6 --phase-models= --no-plot > $R/bench_smollm2.log 2>&1
log "bench smollm2 exit $?"
if [ -n "$q05" ]; then
  env "${real_env[@]}" timeout 600 python3 bench/bench_gpu.py --out-dir $R/bench_qwen05 --models qwen2.5-coder-0.5b \
    --qwen05 "$q05" --contexts qwen2.5-coder-0.5b=16384,32768 --work /tmp/longspec_bench --hf= \
    --tree 4,4 --phase-models= --no-plot > $R/bench_qwen05.log 2>&1
  log "bench qwen05 exit $?"
fi
if [ -n "$q15" ]; then
  env "${real_env[@]}" timeout 600 python3 bench/bench_gpu.py --out-dir $R/bench_qwen15 --models qwen2.5-coder-1.5b \
    --qwen15 "$q15" --contexts qwen2.5-coder-1.5b=16384,32768 --work /tmp/longspec_bench --hf= \
    --tree 4,4 --phase-models= --no-plot > $R/bench_qwen15.log 2>&1
  log "bench qwen15 exit $?"
fi
touch $R/done
log "all done"
