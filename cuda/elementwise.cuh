// Row-local kernels: embedding, RMSNorm, RoPE + KV write, KV moves, SwiGLU, residual add, row
// gathers, conversions and argmax. Each reduces in a fixed order set by the kernel's shape (which
// never depends on the row count), so a row's bits do not depend on the other rows.
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#include "ptx.cuh"
#include "rmsnorm.cuh"

namespace longspec::cuda {

template <typename T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// out[r] = table[ids[r]] (bf16 table, fp32 residual out). Grid: rows.
__global__ void embedding_kernel(const __nv_bfloat16* table, int64_t hidden, const int32_t* ids, float* out,
                                 int64_t out_stride);

// out[r] = x[r] * (1 / sqrt(mean(x[r]^2) + eps)) * w, a warp per row in the order of
// rmsnorm.cuh. Grid: ceil(rows / kRmsNormRowsPerBlock), 32 * kRmsNormRowsPerBlock threads.
constexpr int kRmsNormRowsPerBlock = 8;
template <typename TOut>
__global__ void __launch_bounds__(32 * kRmsNormRowsPerBlock) rmsnorm_kernel(const float* x, int64_t x_stride, const float* w,
                                                                            float eps, int n, int rows, TOut* out,
                                                                            int64_t out_stride) {
  pdl_wait();
  const int lane = threadIdx.x & 31, r = blockIdx.x * kRmsNormRowsPerBlock + (threadIdx.x >> 5);
  if (r < rows) {
    const float* xr = x + int64_t(r) * x_stride;
    const float inv = rms_inverse(rms_sum_squares(xr, n, lane), n, eps);
    TOut* o = out + int64_t(r) * out_stride;
    if (rms_vector_row(xr, n) && rms_vector_row(w, n)) {  // pieces of 4, kRmsBatch in flight per lane
      const float4 *x4 = reinterpret_cast<const float4*>(xr), *w4 = reinterpret_cast<const float4*>(w);
      const int n4 = n / 4;
      for (int p0 = 0; p0 < n4; p0 += 32 * kRmsBatch) {
        float4 xv[kRmsBatch], wv[kRmsBatch];
#pragma unroll
        for (int j = 0; j < kRmsBatch; ++j) {
          const int p = p0 + 32 * j + lane;
          if (p < n4) {
            xv[j] = x4[p];
            wv[j] = __ldg(w4 + p);
          }
        }
#pragma unroll
        for (int j = 0; j < kRmsBatch; ++j) {
          const int p = p0 + 32 * j + lane;
          if (p < n4) {
            o[4 * p] = from_f32<TOut>(rms_apply(xv[j].x, inv, wv[j].x));
            o[4 * p + 1] = from_f32<TOut>(rms_apply(xv[j].y, inv, wv[j].y));
            o[4 * p + 2] = from_f32<TOut>(rms_apply(xv[j].z, inv, wv[j].z));
            o[4 * p + 3] = from_f32<TOut>(rms_apply(xv[j].w, inv, wv[j].w));
          }
        }
      }
    } else {
#pragma unroll 8
      for (int i = lane; i < n; i += 32) o[i] = from_f32<TOut>(rms_apply(xr[i], inv, w[i]));
    }
  }
  pdl_launch_dependents();
}

struct RopeKvParams {
  __nv_bfloat16* x = nullptr;    // rows rotated in place: heads [0, rope_heads) from column 0
  int64_t x_stride = 0;
  int rows = 0, num_kv_heads = 0, head_dim = 0;
  int rope_heads = 0;
  const float* cos = nullptr;    // [rows, hd / 2]
  const float* sin = nullptr;
  const int32_t* slots = nullptr;  // [rows]; nullptr: no cache write
  const __nv_bfloat16* k_src = nullptr;  // [rows, nkv * hd] (after the rotation)
  int64_t k_stride = 0;
  const __nv_bfloat16* v_src = nullptr;
  int64_t v_stride = 0;
  __nv_bfloat16* k_cache = nullptr;  // [nkv][capacity][hd]
  __nv_bfloat16* v_cache = nullptr;
  int64_t capacity = 0;
};

// Rotates heads [0, rope_heads) of each row in place, then copies the row's k and v heads into
// their cache slot (fused RoPE + KV write of a qkv row). Grid: rows, 128 threads.
__global__ void rope_kv_kernel(const RopeKvParams p);

// Moves n cache entries of one kv head per block: every source row is read before any
// destination row is written. Grid: num_kv_heads.
__global__ void kv_move_kernel(__nv_bfloat16* k, __nv_bfloat16* v, int64_t capacity, int head_dim, const int32_t* src,
                               const int32_t* dst, int n);

// out[r][i] = silu(gu[r][i]) * gu[r][inter + i]. Grid: rows.
__global__ void silu_mul_kernel(const __nv_bfloat16* gu, int64_t gu_stride, int inter, __nv_bfloat16* out,
                                int64_t out_stride);

// x[r] += y[r] (x fp32). Grid: rows.
template <typename TY>
__global__ void add_kernel(float* x, int64_t x_stride, const TY* y, int64_t y_stride, int n) {
  pdl_wait();
  const int r = blockIdx.x;
  for (int i = threadIdx.x; i < n; i += blockDim.x) x[int64_t(r) * x_stride + i] += to_f32(y[int64_t(r) * y_stride + i]);
  pdl_launch_dependents();
}

// out[r] = convert(x[r]). Grid: rows.
template <typename TX, typename TO>
__global__ void convert_kernel(const TX* x, int64_t x_stride, TO* out, int64_t out_stride, int n) {
  pdl_wait();
  const int r = blockIdx.x;
  for (int i = threadIdx.x; i < n; i += blockDim.x)
    out[int64_t(r) * out_stride + i] = from_f32<TO>(to_f32(x[int64_t(r) * x_stride + i]));
  pdl_launch_dependents();
}

// out[i] = x[rows[i]], rows of `bytes` bytes. Grid: out rows.
__global__ void gather_rows_kernel(const char* x, int64_t x_stride_bytes, const int32_t* rows, char* out,
                                   int64_t out_stride_bytes, int64_t bytes);

// First index of each row's maximum (NaN never wins; an all-NaN row gives 0). Grid: rows, 256.
__global__ void argmax_kernel(const float* logits, int64_t stride, int n, int32_t* out);

// w = sigmoid(lse_a - lse_b); out = w a + (1 - w) b per (row, head). Grid: rows, block: heads * 32.
__global__ void attention_merge_kernel(const __nv_bfloat16* a, int64_t a_stride, const float* lse_a,
                                       const __nv_bfloat16* b, int64_t b_stride, const float* lse_b,
                                       __nv_bfloat16* out, int64_t out_stride, int num_heads, int head_dim);

}  // namespace longspec::cuda
