// What the kernel explorers (gemm_tiles.cu, attention_variants.cu, kernel_boundary.cu) share: a
// CUDA call that exits with the failing expression on error, and device-side random bf16 fill
// (|x| < scale, 1 by default, from a hash of the index: no host staging, the same values on every
// run).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#define EXPLORER_CHECK(x)                                                                     \
  do {                                                                                        \
    cudaError_t e_ = (x);                                                                     \
    if (e_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                           \
    }                                                                                         \
  } while (0)

static __global__ void explorer_fill_bf16(__nv_bfloat16* p, size_t n, uint32_t seed, float scale = 1.0f) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint32_t s = uint32_t(i) * 2654435761u ^ seed;
    s ^= s >> 13;
    s *= 0x5bd1e995u;
    s ^= s >> 15;
    p[i] = __float2bfloat16(scale * ((int32_t(s >> 8) - (1 << 23)) / float(1 << 23)));
  }
}
