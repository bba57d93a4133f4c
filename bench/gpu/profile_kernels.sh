#!/usr/bin/env bash
# On the GPU machine, after tests/run_gpu.sh has built $BUILD: Nsight Compute over single shapes
# of the CUDA micro-benchmark, one report per shape in $OUT plus a digest of the lines that say
# where the time goes. Each argument is one cuda_ops_bench invocation, e.g.
#   bash bench/gpu/profile_kernels.sh "attn 32 8 128 32768 69" "gemm 28672 4096 69" "tree-expand 6 16384 6"
# NCU_COUNT (default 3): how many matching launches each report holds, after the first four.
set -uo pipefail
BUILD=${BUILD:-/tmp/build_gpu}
OUT=${OUT:-/tmp/longspec_out}
mkdir -p "$OUT"
for what in "$@"; do
  tag=$(echo "$what" | tr ' ' '_')
  timeout 150 ncu --clock-control none -k regex:'gemm|attention_|linear|tree_' -s 4 -c ${NCU_COUNT:-3} \
    --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section Occupancy --section WarpStateStats --section LaunchStats --section SchedulerStats \
    "$BUILD/cuda_ops_bench" $what > "$OUT/ncu_$tag.txt" 2>&1
  echo "== ncu $what (exit $?)"
  grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|L2 Cache Throughput|L1/TEX Cache Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Shared Memory Configuration Size|Dynamic Shared|Block Limit (Reg|Shared)|Warp Cycles Per Issued|Issued Ipc|One or More Eligible|Grid Size|Block Size|Stall|Executed Ipc" \
    "$OUT/ncu_$tag.txt" | head -90
done
