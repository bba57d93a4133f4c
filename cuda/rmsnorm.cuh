// RMSNorm's arithmetic, shared by the standalone kernel (elementwise.cuh) and the GEMM that
// normalises its input rows as it stages them (gemm_splitk.cuh): both give a row exactly these
// bits, so a launcher may fuse the norm into the product for some row counts and not for others.
//
// Order: one warp per row. Where the row is 16-byte aligned and n % 4 == 0 (every real model's
// hidden size), lane l takes the float4 pieces l, l + 32, l + 64, ... (elements 4p .. 4p + 3) and
// accumulates their squares piece by piece, element by element, by fused multiply-adds;
// otherwise it takes the elements l, l + 32, ... one at a time. The warp then adds its lanes by
// a fixed butterfly; inv = 1 / sqrt(ss / n + eps) and each element is (x * inv) * w, every step
// rounded to nearest. The order depends on the row's address and length, never on the row count.
// Loads go out kRmsBatch pieces per lane at a time, before any is added: a row is read in one or
// two memory latencies instead of one per element (padding pieces are zeros, and adding 0 * 0
// to a sum of squares leaves its bits as they are).
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#include "ptx.cuh"

namespace longspec::cuda {

constexpr int kRmsBatch = 8;

__device__ __forceinline__ bool rms_vector_row(const float* x, int n) {
  return n % 4 == 0 && (reinterpret_cast<uintptr_t>(x) & 15) == 0;
}

// Sum of squares of x[0, n) in the order above; every lane returns it.
__device__ __forceinline__ float rms_sum_squares(const float* x, int n, int lane) {
  float ss = 0.0f;
  if (rms_vector_row(x, n)) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    const int n4 = n / 4;
    for (int p0 = 0; p0 < n4; p0 += 32 * kRmsBatch) {
      float4 v[kRmsBatch];
#pragma unroll
      for (int j = 0; j < kRmsBatch; ++j) {
        const int p = p0 + 32 * j + lane;
        v[j] = p < n4 ? x4[p] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      }
#pragma unroll
      for (int j = 0; j < kRmsBatch; ++j) {
        ss = __fmaf_rn(v[j].x, v[j].x, ss);
        ss = __fmaf_rn(v[j].y, v[j].y, ss);
        ss = __fmaf_rn(v[j].z, v[j].z, ss);
        ss = __fmaf_rn(v[j].w, v[j].w, ss);
      }
    }
  } else {
    for (int i0 = 0; i0 < n; i0 += 32 * kRmsBatch) {
      float v[kRmsBatch];
#pragma unroll
      for (int j = 0; j < kRmsBatch; ++j) {
        const int i = i0 + 32 * j + lane;
        v[j] = i < n ? x[i] : 0.0f;
      }
#pragma unroll
      for (int j = 0; j < kRmsBatch; ++j) ss = __fmaf_rn(v[j], v[j], ss);
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ss = __fadd_rn(ss, __shfl_xor_sync(0xffffffffu, ss, o));
  return ss;
}

__device__ __forceinline__ float rms_inverse(float sum_squares, int n, float eps) {
  return __frcp_rn(__fsqrt_rn(__fadd_rn(__fdiv_rn(sum_squares, static_cast<float>(n)), eps)));
}

__device__ __forceinline__ float rms_apply(float x, float inv, float w) { return __fmul_rn(__fmul_rn(x, inv), w); }

// Eight consecutive columns of a row, RmsNorm(h) * w rounded to bf16 and packed (the GEMMs stage
// their normalised x so: h0, h1 the row's columns, w0, w1 the norm weights, inv the row's scale).
__device__ __forceinline__ uint4 rms_apply_pack8(float4 h0, float4 h1, float4 w0, float4 w1, float inv) {
  return make_uint4(pack_bf16(rms_apply(h0.x, inv, w0.x), rms_apply(h0.y, inv, w0.y)),
                    pack_bf16(rms_apply(h0.z, inv, w0.z), rms_apply(h0.w, inv, w0.w)),
                    pack_bf16(rms_apply(h1.x, inv, w1.x), rms_apply(h1.y, inv, w1.y)),
                    pack_bf16(rms_apply(h1.z, inv, w1.z), rms_apply(h1.w, inv, w1.w)));
}

}  // namespace longspec::cuda
