#!/usr/bin/env bash
# On a fresh GPU machine (carry .deps and .whl), main as it stands, in one call of ~6 minutes:
#   1. the C++ build (for cuda_ops_bench) beside the Python package's;
#   2. bench_gpu.py on the Llama-3-8B shape at 32k: plain, speculative and the phase rows issue 9's
#      benchmark asks for (verify_step and draft_round of the default tree and the small tree;
#      random weights and draft: timing only, tau meaningless);
#   3. Nsight Compute on one-row decode attention at the Qwen2.5-1.5B shape at 32k and SmolLM2's
#      at 8k (the prefix kernel reads K/V at ~3 TB/s there, bench/results/gpu_gemm_bulk_halves_ring_2026-12-02.md).
# Everything under $OUT as one tarball (a call returns at most 8 files).
#   OUT=$OUT bash bench/gpu/main_phase_rows.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/longspec_out}
R=/tmp/phase_rows
mkdir -p $R
(BUILD=/tmp/build_gpu OUT=$R/cpp bash tests/run_gpu.sh > $R/build.txt 2>&1; echo "C++ build exit $?" >> $R/progress) &
OUT=$R source bench/gpu/package_site.sh
wait
echo "package built" >> $R/progress
timeout 330 python3 bench/bench_gpu.py --out-dir $R/bench_8b --models llama3-8b-shape \
  --contexts llama3-8b-shape=32768 --work /tmp/longspec_bench --hf= --no-plot --no-auto > $R/bench_8b.log 2>&1
echo "bench 8B exit $?" >> $R/progress
BUILD=/tmp/build_gpu OUT=$R/ncu timeout 150 bash bench/gpu/profile_kernels.sh "attn 12 2 128 32768 1" \
  "attn 9 3 64 8192 1" > $R/ncu.log 2>&1
echo "ncu exit $?" >> $R/progress
tar czf "$OUT/phase_rows.tgz" -C /tmp phase_rows
cat $R/progress
grep -h "^| " $R/bench_8b/*.md
