#!/usr/bin/env bash
# On the GPU machine: the three open questions of 2026-12-01 (bench/results/gpu_decode_finish_2026-12-01.md)
# in one call of about seven minutes.
#  1. Why decode attention finishing inside its prefix kernel was slower: Nsight Compute on the
#     fused kernel (the tail's stalls by source line; the build has -lineinfo) and on the
#     prefix + finishing kernels it replaces, at the 1.5B shape (32k) and SmolLM2 (8k).
#     Needs bench/gpu/pending/fused_decode_finish.patch applied to the tree before the call
#     (`git am` here); without it the "fused" runs are the unfused kernels again.
#  2. Whether the finishing pass's group warps cost the Llama-8B 8-row verify 7.6 -> 8.2 ms: the
#     CUPTI timeline of one speculation round with the 2,2,2,1 tree, switch on and off.
#  3. What holds the 69-row verify GEMMs at 0.8-1.2 TB/s (Llama-8B o 41.8 us where its weight
#     bytes take 7.6). In the tile exploration (logs/gemm_tiles_narrow_2026-11-30.txt) the 80 x 32
#     tile took 31 us at 32 rows as at 69 and at 6 to 14 stages alike, so neither rows nor
#     pipeline depth set it; each of its 128 blocks re-reads all 80 padded x rows from L2 (82 MB
#     per call beside 33.5 MB of weights), but at 32 rows the 32 x 32 tile (half the x bytes of
#     the 48 x 32 one) took the same 24 us. So: L2, the weight stream, or the two warps per SM?
#   OUT=... BUILD=/tmp/build_gpu bash bench/gpu/profile_open_questions.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/longspec_out}
BUILD=${BUILD:-/tmp/build_gpu}
mkdir -p "$OUT"
BUILD=$BUILD OUT=$OUT bash tests/run_gpu.sh > "$OUT/build_only.txt" 2>&1 || { tail -20 "$OUT/build_only.txt"; exit 1; }
for shape in "12 2 128 32768 1" "9 3 64 8192 1"; do
  for fused in 1 0; do
    tag="$(echo "$shape" | tr ' ' '_')_fused$fused"
    LONGSPEC_DECODE_FUSED_FINISH=$fused timeout 150 ncu --clock-control none -k regex:'attention_decode_prefix|attention_finish' \
      -s 4 -c 2 --section SpeedOfLight --section WarpStateStats --section SourceCounters --section LaunchStats \
      --section Occupancy "$BUILD/cuda_ops_bench" attn $shape > "$OUT/ncu_attn_$tag.txt" 2>&1
    echo "== ncu attn $shape fused=$fused (exit $?)"
    grep -E "attention_|Duration|Registers Per|Achieved Occupancy|Warp Cycles Per Issued|One or More Eligible" \
      "$OUT/ncu_attn_$tag.txt" | head -16
  done
done
PHASES="speculative" TREE=2,2,2,1 SWITCHES=LONGSPEC_FINISH_GROUP_WARPS BUILD=$BUILD OUT=$OUT \
  bash bench/gpu/ab_switches.sh "llama3-8b-shape 32768" > "$OUT/ab_verify.log" 2>&1
for d in "$OUT"/ab_*/; do
  echo "== $d"
  head -12 "$d/trace_llama3-8b-shape_32768_speculative.txt" 2>/dev/null
done
for what in "gemm 4096 4096 69" "gemm 4096 14336 69" "gemm 4096 4096 1"; do
  tag=$(echo "$what" | tr ' ' '_')
  timeout 100 ncu --clock-control none -k regex:gemm_bf16 -s 3 -c 1 --section SpeedOfLight \
    --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables --section WarpStateStats \
    --section Occupancy --section LaunchStats "$BUILD/cuda_ops_bench" $what > "$OUT/ncu_$tag.txt" 2>&1
  echo "== ncu $what (exit $?)"
  grep -E "gemm_bf16|Duration|DRAM Throughput|L2 Cache Throughput|L1/TEX Hit|L2 Hit|Mem Busy|Max Bandwidth|Registers Per|Achieved Occupancy|One or More Eligible|Stall" \
    "$OUT/ncu_$tag.txt" | head -20
done
