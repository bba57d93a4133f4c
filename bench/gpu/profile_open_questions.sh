#!/usr/bin/env bash
# On the GPU machine: the open questions of 2026-12-01 (bench/results/gpu_verify_gemm_2026-12-01.md)
# in one call of about five minutes.
#  1. The launch for a small tree's 17-32 packed queries (the [2,2,2,1] tree's 8 rows of Llama-8B:
#     one 64-query tile of four warps, two idle, in 136 group blocks; 78 + 8 us a layer against
#     39 + 9 in a plain step): bench/gpu/attention_variants.cu FEW=1 (blocks of one, two or four
#     warps, split or group states) at 8 and 16 rows.
#  2. What holds the 69-row tree attention at 235 us a layer (Llama-8B, 32k; floor 47 us by FLOPs):
#     Nsight Compute on its prefix kernel (stall reasons by source line; the build has -lineinfo).
#  3. Whether the finishing pass's group warps cost the 8-row verify: the CUPTI timeline of one
#     speculation round with the 2,2,2,1 tree, switch on and off.
#   OUT=... BUILD=/tmp/build_gpu bash bench/gpu/profile_open_questions.sh   (carry .deps and .whl:
#   bench/gpu/fetch_carried.sh)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/longspec_out}
BUILD=${BUILD:-/tmp/build_gpu}
mkdir -p "$OUT"
nvcc -O3 -std=c++17 --expt-relaxed-constexpr -arch=sm_90a -I cuda bench/gpu/attention_variants.cu \
  -o /tmp/attention_variants || exit 1
for rows in 8 16; do
  FEW=1 timeout 90 /tmp/attention_variants $rows > "$OUT/attention_few_rows$rows.txt" 2>&1
  echo "== attention_variants FEW=1 $rows rows (exit $?)"
  grep -E "^##|wave x1" "$OUT/attention_few_rows$rows.txt" | cut -c1-130 | head -40
done
BUILD=$BUILD OUT=$OUT bash tests/run_gpu.sh > "$OUT/build_only.txt" 2>&1 || { tail -20 "$OUT/build_only.txt"; exit 1; }
timeout 150 ncu --clock-control none -k regex:attention_prefix -s 2 -c 1 --section SpeedOfLight \
  --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis --section SourceCounters \
  --section Occupancy --section LaunchStats "$BUILD/cuda_ops_bench" attn 32 8 128 32768 69 > "$OUT/ncu_attn69.txt" 2>&1
echo "== ncu attention prefix, Llama-8B 69 rows at 32k (exit $?)"
grep -E "Duration|Throughput|Ipc|Issue Slots|Eligible|Warp Cycles|Registers Per|Achieved Occupancy" "$OUT/ncu_attn69.txt" | head -20
PHASES="speculative" TREE=2,2,2,1 SWITCHES=LONGSPEC_FINISH_GROUP_WARPS BUILD=$BUILD OUT=$OUT \
  bash bench/gpu/ab_switches.sh "llama3-8b-shape 32768" > "$OUT/ab_verify.log" 2>&1
for d in "$OUT"/ab_*/; do
  echo "== $d"
  grep -E "^##|step span" "$d/trace_llama3-8b-shape_32768_speculative.txt" 2>/dev/null
done
