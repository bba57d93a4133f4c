#!/usr/bin/env bash
# On the GPU machine (a fresh one is fine): the split-K GEMM's streamed walk (LONGSPEC_GEMM_STREAM,
# bench/gpu/pending/gemm_stream.patch, applied to the snapshot when the tree lacks it)
# built, tested and timed against the round walk in one run (the least a session's last device
# minutes allow): the C++ build, GoogleTest CudaLinear.* and CudaEngineTest.* with the streamed
# walk on, `cuda_ops_bench gemm-decode` on, off, on. Results in /tmp/bgout/stream.
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
# The walk is a pending patch until a card has run it (bench/gpu/pending/README.md).
grep -q kGemmStreamRowsMax cuda/gemm_splitk.cuh || git apply bench/gpu/pending/gemm_stream.patch || exit 1
log() { echo "[$(date +%T)] $*" >> $R/progress; }
BUILD=$B OUT=$R/cpp bash tests/run_gpu.sh > $R/build.txt 2>&1 || { log "build failed"; exit 1; }
log "C++ built"
# Every GEMM test with the streamed walk on (against the other kernels, the CPU and the round walk).
LONGSPEC_GEMM_STREAM=1 $B/longspec_cuda_tests --gtest_filter='CudaLinear.*:CudaEngineTest.*' > $R/cuda_tests_linear_engine.log 2>&1
log "GoogleTest CudaLinear.* CudaEngineTest.* (stream on) exit $? ($(grep -c '^\[       OK' $R/cuda_tests_linear_engine.log) ok): $(grep -E '^\[  FAILED' $R/cuda_tests_linear_engine.log | head -3 | tr '\n' ' ')"
i=0
for s in 1 0 1; do
  i=$((i + 1))
  LONGSPEC_GEMM_STREAM=$s $B/cuda_ops_bench gemm-decode > $R/gemm_decode_run${i}_stream$s.txt 2>&1
  log "gemm-decode run $i stream $s exit $?"
done
touch $R/done
