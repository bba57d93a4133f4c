#!/usr/bin/env bash
# On the GPU machine (a fresh one is fine; carry .deps and .whl): a change without a runtime
# switch (a pending patch that moves a compile-time constant) timed against the tree without it,
# two builds in one background chain, one GPU user at a time:
#   1. the tree as it is: the C++ build, `cuda_ops_bench` for each of BENCH's arguments (default
#      "qkv-rope gemm-decode"), timelines of plain steps of SHAPES (default the 1.5B and Llama-8B
#      shapes at 32k; the Python package is built for them meanwhile);
#   2. PATCH applied (git apply) to the same snapshot, rebuilt incrementally and the package with it:
#      the same benches and timelines.
# GoogleTest runs in full on the builds GTEST names (default "base patched"); NCU (cuda_ops_bench argument lists separated by ';', e.g.
# "qkv-rope llama8b") adds an Nsight Compute report of each on both sides (profile_kernels.sh);
# SANITIZE (a GoogleTest filter) runs compute-sanitizer memcheck and racecheck on the patched build.
# Progress in /tmp/bgout/ab/progress; everything under /tmp/bgout/ab/{base,patched}.
#   PATCH=bench/gpu/pending/rms_sum_batch16.patch bash bench/gpu/build_ab.sh   # starts it
#   bash bench/gpu/build_ab.sh --status
#   bash bench/gpu/build_ab.sh --wait     # in the same call as the start: no polls to keep the machine
set -uo pipefail
R=/tmp/bgout/ab
case "${1:-start}" in
  --status)  # the chain's progress so far
    exec cat $R/progress 2> /dev/null ;;
  --wait)  # until the chain is done or failed (at most 580 s: one device call), then its progress
    for _ in $(seq 1 116); do
      [ -f $R/done ] && break
      grep -q failed $R/progress 2> /dev/null && break
      sleep 5
    done
    exec cat $R/progress 2> /dev/null ;;
  --run) ;;  # the chain itself, from the snapshot
  *)  # a snapshot of this tree, and the chain on it in the background
    [ -n "${PATCH:-}" ] || { echo "PATCH: the patch to time"; exit 2; }
    git apply --check "$PATCH" || { echo "$PATCH does not apply to this tree"; exit 2; }
    rm -rf /tmp/src_ab $R && mkdir -p /tmp/src_ab $R && cp -r . /tmp/src_ab/
    PATCH=$PATCH BENCH=${BENCH:-qkv-rope gemm-decode} NCU=${NCU:-} GTEST=${GTEST:-base patched} SANITIZE=${SANITIZE:-} \
      SHAPES=${SHAPES:-qwen2.5-1.5b-shape 32768;llama3-8b-shape 32768} \
      setsid nohup bash /tmp/src_ab/bench/gpu/build_ab.sh --run > $R/chain.log 2>&1 < /dev/null &
    echo "build A/B started"
    exit 0 ;;
esac
cd /tmp/src_ab
B=/tmp/build_ab
log() { echo "[$(date +%T)] $*" >> $R/progress; }
# measure SIDE: the benches and timelines of the tree as built now, into $R/SIDE.
measure() {
  local out=$R/$1 what shapes
  mkdir -p "$out"
  for what in $BENCH; do
    timeout 180 $B/cuda_ops_bench $what > "$out/cuda_ops_bench_$what.txt" 2>&1
    log "$1: cuda_ops_bench $what exit $?"
  done
  IFS=';' read -r -a shapes <<< "$SHAPES"
  OUT=$out/trace PHASES=plain timeout 400 bash bench/gpu/trace_steps.sh "${shapes[@]}" > "$out/trace.log" 2>&1
  log "$1: timelines exit $? ($(grep -h 'step span' $out/trace/trace_*.txt 2> /dev/null | cut -c1-24 | tr '\n' ' '))"
  if [ -n "$NCU" ]; then
    IFS=';' read -r -a shapes <<< "$NCU"
    BUILD=$B OUT=$out/ncu NCU_COUNT=6 bash bench/gpu/profile_kernels.sh "${shapes[@]}" > "$out/ncu.log" 2>&1
    log "$1: ncu exit $?"
  fi
}
# gtest SIDE: the whole GoogleTest suite on the build as it is now.
gtest() {
  [[ " $GTEST " == *" $1 "* ]] || return 0
  timeout 600 $B/longspec_cuda_tests > $R/cuda_tests_$1.log 2>&1
  log "$1: GoogleTest exit $? ($(grep -c '^\[       OK' $R/cuda_tests_$1.log) ok; $(grep -E '^\[  FAILED' $R/cuda_tests_$1.log | head -3 | tr '\n' ' '))"
}

BUILD=$B OUT=$R/base_build bash tests/run_gpu.sh > $R/base_build.txt 2>&1 || { log "base build failed"; exit 1; }
log "base built"
measure base
gtest base
git apply "$PATCH" || { log "patch $PATCH failed"; exit 1; }
log "applied $PATCH"
rm -rf /tmp/lsite  # package_site.sh builds the package again, now with the patch
BUILD=$B OUT=$R/patched_build bash tests/run_gpu.sh > $R/patched_build.txt 2>&1 || { log "patched build failed"; exit 1; }
log "patched built"
measure patched
gtest patched
if [ -n "$SANITIZE" ]; then
  for tool in memcheck racecheck; do
    timeout 300 compute-sanitizer --tool $tool --error-exitcode 9 $B/longspec_cuda_tests --gtest_filter="$SANITIZE" \
      > $R/sanitizer_$tool.log 2>&1
    log "patched: compute-sanitizer $tool exit $? ($(grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY' $R/sanitizer_$tool.log | tr '\n' ' '))"
  done
fi
touch $R/done
log "all done"
