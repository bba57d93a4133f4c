source /tmp/src/bench/gpu/device_env.sh
BUILD=/tmp/build_gpu OUT=/tmp/bgout/cpp bash tests/run_gpu.sh tests > /tmp/bgout/cpp_tests.txt 2>&1
log "C++ GPU tests: $(grep -E 'PASSED|FAILED|exit' /tmp/bgout/cpp_tests.txt | tr '\n' ' ')"
smol_timeline early
log "timeline done"
bench_qwen05 bench_qwen05 4,4 ""
F='CudaLinear.GatheredNormArgmaxGivesTheIdsOfTheComposedOps:CudaLinear.ArgmaxKeysStartFromZeroOnEveryLaunch:CudaAttention.TreePartStartedEarlySeesTheQkvProductsRows:CudaAttention.HybridMatchesCpu:CudaAttention.DecodeWarpsGiveTheOneWarpKernelsBits:CudaAttention.FinishGroupWarpsGiveTheOwnerFoldsBits'
for tool in memcheck racecheck; do timeout 200 compute-sanitizer --tool $tool --error-exitcode 9 /tmp/build_gpu/longspec_cuda_tests --gtest_filter="$F" > /tmp/bgout/sanitizer_$tool.log 2>&1; log "$tool exit $?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/bgout/sanitizer_$tool.log | tr '\n' ' ')"; done
bench_smol bench_smollm2_again
