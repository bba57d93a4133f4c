#!/usr/bin/env bash
# On the GPU machine (a fresh one is fine): the split-K GEMM's streamed walk (LONGSPEC_GEMM_STREAM)
# built, tested and timed against the round walk in one run: the C++ build, then (the Python
# package building beside them) GoogleTest CudaLinear.* and CudaEngineTest.*, `cuda_ops_bench
# gemm-decode` both ways, the CUPTI timelines of plain steps both ways, and compute-sanitizer on
# the new test (memcheck; the budget left no time for racecheck). Results in /tmp/bgout/stream.
#   bash bench/gpu/gemm_stream_ab.sh            # snapshot to /tmp/src, starts in the background
#   bash bench/gpu/gemm_stream_ab.sh --status
set -uo pipefail
R=/tmp/bgout/stream
if [ "${1:-}" = "--status" ]; then
  cat $R/progress 2>/dev/null
  exit 0
fi
if [ "${1:-}" != "--run" ]; then
  rm -rf /tmp/src && mkdir -p /tmp/src $R && cp -r . /tmp/src/
  setsid nohup bash /tmp/src/bench/gpu/gemm_stream_ab.sh --run > $R/chain.log 2>&1 < /dev/null &
  echo "chain started"
  exit 0
fi
cd /tmp/src
B=/tmp/build_gpu
log() { echo "[$(date +%T)] $*" >> $R/progress; }
BUILD=$B OUT=$R/cpp bash tests/run_gpu.sh > $R/build.txt 2>&1 || { log "build failed"; exit 1; }
log "C++ built"
(OUT=$R source bench/gpu/package_site.sh && touch $R/package_ready) > $R/package.log 2>&1 &
$B/longspec_cuda_tests --gtest_filter='CudaLinear.*:CudaEngineTest.*' > $R/cuda_tests_linear_engine.log 2>&1
log "GoogleTest CudaLinear.* CudaEngineTest.* exit $? ($(grep -c '^\[       OK' $R/cuda_tests_linear_engine.log) ok): $(grep -E '^\[  FAILED' $R/cuda_tests_linear_engine.log | head -3 | tr '\n' ' ')"
for _ in $(seq 1 60); do [ -e $R/package_ready ] && break; sleep 2; done
log "package ready: $(ls $R/package_ready 2>/dev/null)"
for s in 1 0; do  # timed with the CPUs idle again
  LONGSPEC_GEMM_STREAM=$s $B/cuda_ops_bench gemm-decode > $R/gemm_decode_stream$s.txt 2>&1
  log "gemm-decode stream $s exit $?"
done
timeout 90 compute-sanitizer --tool memcheck --error-exitcode 9 $B/longspec_cuda_tests \
  --gtest_filter='CudaLinear.StreamedChunksGiveTheRoundWalksBits' > $R/sanitizer_memcheck.log 2>&1
log "compute-sanitizer memcheck exit $?: $(grep -E 'SUMMARY' $R/sanitizer_memcheck.log | tr '\n' ' ')"
for s in 1 0; do
  LONGSPEC_GEMM_STREAM=$s OUT=$R/trace_stream$s bash bench/gpu/trace_steps.sh "qwen2.5-1.5b-shape 32768" \
    "qwen2.5-0.5b-shape 32768" > $R/trace_stream$s.log 2>&1
  log "trace stream $s exit $?: $(grep -h 'step span' $R/trace_stream$s/trace_* | cut -d, -f1 | tr '\n' ' ')"
done
touch $R/done
