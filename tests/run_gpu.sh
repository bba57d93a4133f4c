#!/usr/bin/env bash
# On the GPU machine (no network): build the C++ tests and the CUDA micro-benchmark for sm_90a
# with all cores (GoogleTest from the carried Debian package in .deps/, which
# bench/gpu/fetch_carried.sh puts there), then run what is asked:
#   bash tests/run_gpu.sh [tests] [sanitize] [bench] [python]
# Logs go to $OUT (or /tmp/longspec_out); the last lines printed are a summary.
# After a change to cuda/gemm*.cuh run `bench` too: its GEMM table holds the 69-row verify shapes,
# which the decode timelines do not exercise (a register change there once cost the 8B verify 20%).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/longspec_out}
mkdir -p "$OUT"
BUILD=${BUILD:-build/gpu}
export LONGSPEC_CUDA_ARCHITECTURES=${LONGSPEC_CUDA_ARCHITECTURES:-90a}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"

if [ ! -d /tmp/gtest/usr ]; then
  mkdir -p /tmp/gtest
  for f in .deps/libgtest-dev_*.deb; do dpkg -x "$f" /tmp/gtest; done
fi
# nlohmann/json headers: the installed wheel, else a wheel carried in .deps/ (a wheel is a zip).
json_inc=$(python3 -c 'import nlohmann_json; print(nlohmann_json.get_include())' 2>/dev/null || true)
if [ -z "$json_inc" ]; then
  for f in .deps/nlohmann_json-*.whl; do [ -f "$f" ] && python3 -m zipfile -e "$f" /tmp/nlohmann_whl; done
  json_inc=/tmp/nlohmann_whl/nlohmann_json/include
fi
t0=$(date +%s)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGSPEC_BUILD_TESTS=ON -DLONGSPEC_CUDA=ON \
      -DLONGSPEC_NLOHMANN_JSON_INCLUDE_DIR="$json_inc" \
      -DLONGSPEC_BUILD_BENCH=ON -DGTest_DIR=/tmp/gtest/usr/lib/x86_64-linux-gnu/cmake/GTest \
      > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" > "$OUT/build.log" 2>&1 || { grep -E "error" -A3 "$OUT/build.log" | head -80; exit 1; }
echo "C++ build: $(( $(date +%s) - t0 )) s"

for step in "$@"; do
  case "$step" in
    tests)
      "$BUILD/longspec_cuda_tests" --gtest_output="xml:$OUT/cuda_tests.xml" > "$OUT/cuda_tests.log" 2>&1
      echo "cuda tests exit $?"
      grep -E "^\[  FAILED|^\[  PASSED|^\[  SKIPPED|Failure$" "$OUT/cuda_tests.log" | head -40
      grep -B2 -A12 "Failure$" "$OUT/cuda_tests.log" | head -150
      ;;
    sanitize)
      for tool in memcheck racecheck; do
        timeout 420 compute-sanitizer --tool "$tool" --error-exitcode 9 "$BUILD/longspec_cuda_tests" \
          --gtest_filter='CudaRowOps.*:CudaLinear.FusedEpiloguesMatchTheComposedOps:CudaLinear.InputNormGivesTheBitsOfTheStandaloneNorm:CudaLinear.RopeKvEpilogueGivesTheBitsOfTheComposedOps:CudaLinear.RopeEpilogueWithoutKvGivesTheBitsOfTheComposedOps:CudaLinear.AddConvertEpilogueGivesTheBitsOfTheComposedOps:CudaLinear.MatchesCpuOverAwkwardShapes:CudaLinear.GatheredNormArgmaxGivesTheIdsOfTheComposedOps:CudaLinear.ArgmaxKeysStartFromZeroOnEveryLaunch:CudaAttention.TreeMatchesCpuIncludingRing:CudaAttention.TreePartStartedEarlySeesTheQkvProductsRows:CudaAttention.HybridMatchesCpu:CudaAttention.DecodeWarpsGiveTheOneWarpKernelsBits:CudaAttention.FinishGroupWarpsGiveTheOwnerFoldsBits:CudaAttention.FinishWideGivesTheFinishingKernelsBits:CudaAttention.TreeBlocksSideBySideGiveTheFinishingKernelsBits:CudaSpeculation.*' \
          > "$OUT/sanitizer_$tool.log" 2>&1
        echo "compute-sanitizer $tool exit $?"
        grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|Race" "$OUT/sanitizer_$tool.log" | head -10
      done
      ;;
    bench)
      nvidia-smi --query-gpu=clocks.sm,clocks.mem,power.draw --format=csv,noheader -lms 250 > "$OUT/clocks.txt" 2>&1 &
      smi=$!
      "$BUILD/cuda_ops_bench" all > "$OUT/cuda_ops_bench.txt" 2>&1
      echo "bench exit $?"
      kill $smi 2>/dev/null
      cat "$OUT/cuda_ops_bench.txt"
      echo "SM/mem clocks during the bench (MHz): $(sort "$OUT/clocks.txt" | uniq -c | sort -rn | head -4 | tr '\n' ';')"
      ;;
    profile)
      # One decode-shaped GEMM and one decode attention under Nsight Compute (clocks left alone).
      for what in "gemm 4096 4096 1" "attn 32 8 128 32768 1"; do
        tag=$(echo "$what" | tr ' ' '_')
        timeout 120 ncu --clock-control none -k regex:'gemm_bf16|attention_prefix|attention_finish' -s 3 -c 2 \
          --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats \
          --section LaunchStats "$BUILD/cuda_ops_bench" $what > "$OUT/ncu_$tag.txt" 2>&1
        echo "== ncu $what (exit $?)"
        grep -E "attention_|gemm_bf16|Duration|DRAM Throughput|Memory Throughput|SM Frequency|DRAM Frequency|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|Stall|Warp Cycles Per Issued|One or More Eligible|Grid Size" "$OUT/ncu_$tag.txt" | head -40
      done
      ;;
  esac
done
