// Row-local kernels (declared in elementwise.cuh) and their launchers.
#include <cuda_runtime.h>

#include "cuda_ops.h"

namespace longspec::cuda {

__global__ void embedding_kernel(const __nv_bfloat16* table, int64_t hidden, const int32_t* ids, float* out,
                                 int64_t out_stride) {
  pdl_wait();
  const int r = blockIdx.x;
  const __nv_bfloat16* src = table + int64_t(ids[r]) * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) out[int64_t(r) * out_stride + i] = __bfloat162float(src[i]);
  pdl_launch_dependents();
}

__global__ void __launch_bounds__(128) rope_kv_kernel(const RopeKvParams p) {
  pdl_wait();
  const int r = blockIdx.x;
  const int half = p.head_dim / 2;
  __nv_bfloat16* row = p.x + int64_t(r) * p.x_stride;
  const float* c = p.cos + int64_t(r) * half;
  const float* s = p.sin + int64_t(r) * half;
  for (int idx = threadIdx.x; idx < p.rope_heads * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    __nv_bfloat16* x = row + int64_t(h) * p.head_dim;
    const float a = __bfloat162float(x[i]), b = __bfloat162float(x[i + half]);
    x[i] = __float2bfloat16_rn(__fsub_rn(__fmul_rn(a, c[i]), __fmul_rn(b, s[i])));
    x[i + half] = __float2bfloat16_rn(__fadd_rn(__fmul_rn(b, c[i]), __fmul_rn(a, s[i])));
  }
  if (p.slots == nullptr) {
    pdl_launch_dependents();
    return;
  }
  __syncthreads();  // the k heads are rotated before they are copied
  const int64_t slot = p.slots[r];
  const int per_head = p.head_dim / 8;  // 16-byte pieces
  for (int idx = threadIdx.x; idx < p.num_kv_heads * per_head; idx += blockDim.x) {
    const int h = idx / per_head, piece = idx % per_head;
    const int64_t dst = (int64_t(h) * p.capacity + slot) * p.head_dim + piece * 8;
    const int64_t src = int64_t(h) * p.head_dim + piece * 8;
    *reinterpret_cast<uint4*>(p.k_cache + dst) = *reinterpret_cast<const uint4*>(p.k_src + int64_t(r) * p.k_stride + src);
    *reinterpret_cast<uint4*>(p.v_cache + dst) = *reinterpret_cast<const uint4*>(p.v_src + int64_t(r) * p.v_stride + src);
  }
  pdl_launch_dependents();
}

__global__ void __launch_bounds__(256) kv_move_kernel(__nv_bfloat16* k, __nv_bfloat16* v, int64_t capacity,
                                                      int head_dim, const int32_t* src, const int32_t* dst, int n) {
  constexpr int kBatch = 32;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  uint4* buf = reinterpret_cast<uint4*>(smem_raw);  // [kBatch][2][head_dim / 8]
  pdl_wait();
  const int h = blockIdx.x, per_row = head_dim / 8;
  __nv_bfloat16* kh = k + int64_t(h) * capacity * head_dim;
  __nv_bfloat16* vh = v + int64_t(h) * capacity * head_dim;
  for (int i0 = 0; i0 < n; i0 += kBatch) {
    const int cnt = min(kBatch, n - i0);
    for (int idx = threadIdx.x; idx < cnt * per_row; idx += blockDim.x) {
      const int i = idx / per_row, piece = idx % per_row;
      const int64_t off = int64_t(src[i0 + i]) * head_dim + piece * 8;
      buf[(i * 2) * per_row + piece] = *reinterpret_cast<const uint4*>(kh + off);
      buf[(i * 2 + 1) * per_row + piece] = *reinterpret_cast<const uint4*>(vh + off);
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < cnt * per_row; idx += blockDim.x) {
      const int i = idx / per_row, piece = idx % per_row;
      const int64_t off = int64_t(dst[i0 + i]) * head_dim + piece * 8;
      *reinterpret_cast<uint4*>(kh + off) = buf[(i * 2) * per_row + piece];
      *reinterpret_cast<uint4*>(vh + off) = buf[(i * 2 + 1) * per_row + piece];
    }
    __syncthreads();
  }
  pdl_launch_dependents();
}

__global__ void silu_mul_kernel(const __nv_bfloat16* gu, int64_t gu_stride, int inter, __nv_bfloat16* out,
                                int64_t out_stride) {
  pdl_wait();
  const int r = blockIdx.x;
  for (int i = threadIdx.x; i < inter; i += blockDim.x) {
    const float g = __bfloat162float(gu[int64_t(r) * gu_stride + i]);
    const float u = __bfloat162float(gu[int64_t(r) * gu_stride + inter + i]);
    out[int64_t(r) * out_stride + i] = __float2bfloat16_rn(g / (1.0f + __expf(-g)) * u);
  }
  pdl_launch_dependents();
}

__global__ void gather_rows_kernel(const char* x, int64_t x_stride_bytes, const int32_t* rows, char* out,
                                   int64_t out_stride_bytes, int64_t bytes) {
  pdl_wait();
  const int i = blockIdx.x;
  const char* src = x + int64_t(rows[i]) * x_stride_bytes;
  char* dst = out + int64_t(i) * out_stride_bytes;
  for (int64_t b = threadIdx.x * 4; b < bytes; b += blockDim.x * 4) {
    *reinterpret_cast<uint32_t*>(dst + b) = *reinterpret_cast<const uint32_t*>(src + b);
  }
  pdl_launch_dependents();
}

__global__ void __launch_bounds__(256) argmax_kernel(const float* logits, int64_t stride, int n, int32_t* out) {
  __shared__ float best_v[256];
  __shared__ int best_i[256];
  pdl_wait();
  const int r = blockIdx.x;
  const float* l = logits + int64_t(r) * stride;
  float bv = 0.0f;
  int bi = -1;
  for (int c = threadIdx.x; c < n; c += 256) {
    const float x = l[c];
    if (x != x) continue;
    if (bi < 0 || x > bv) {
      bv = x;
      bi = c;
    }
  }
  best_v[threadIdx.x] = bv;
  best_i[threadIdx.x] = bi;
  __syncthreads();
  for (int o = 128; o > 0; o >>= 1) {
    if (threadIdx.x < o) {
      const float ov = best_v[threadIdx.x + o];
      const int oi = best_i[threadIdx.x + o];
      const int mi = best_i[threadIdx.x];
      if (oi >= 0 && (mi < 0 || ov > best_v[threadIdx.x] || (ov == best_v[threadIdx.x] && oi < mi))) {
        best_v[threadIdx.x] = ov;
        best_i[threadIdx.x] = oi;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[r] = best_i[0] < 0 ? 0 : best_i[0];
  pdl_launch_dependents();
}

__global__ void attention_merge_kernel(const __nv_bfloat16* a, int64_t a_stride, const float* lse_a,
                                       const __nv_bfloat16* b, int64_t b_stride, const float* lse_b,
                                       __nv_bfloat16* out, int64_t out_stride, int num_heads, int head_dim) {
  pdl_wait();
  const int r = blockIdx.x;
  for (int idx = threadIdx.x; idx < num_heads * head_dim; idx += blockDim.x) {
    const int h = idx / head_dim;
    const float la = lse_a[int64_t(r) * num_heads + h], lb = lse_b[int64_t(r) * num_heads + h];
    const float xa = __bfloat162float(a[int64_t(r) * a_stride + idx]);
    const float xb = __bfloat162float(b[int64_t(r) * b_stride + idx]);
    float y;
    if (la == -INFINITY) {
      y = xb;
    } else if (lb == -INFINITY) {
      y = xa;
    } else {
      const float w = 1.0f / (1.0f + ex2(__fmul_rn(__fsub_rn(lb, la), kLog2e)));
      y = __fadd_rn(__fmul_rn(w, xa), __fmul_rn(1.0f - w, xb));
    }
    out[int64_t(r) * out_stride + idx] = __float2bfloat16_rn(y);
  }
  pdl_launch_dependents();
}

// ---------------------------------------------------------------------------------------------

cudaError_t PrepareElementwiseKernels() {
  using bf = __nv_bfloat16;
  for (cudaError_t e :
       {PrepareKernel(embedding_kernel), PrepareKernel(rmsnorm_kernel<bf>), PrepareKernel(rmsnorm_kernel<float>),
        PrepareKernel(rope_kv_kernel), PrepareKernel(kv_move_kernel), PrepareKernel(silu_mul_kernel),
        PrepareKernel(add_kernel<bf>), PrepareKernel(add_kernel<float>), PrepareKernel(convert_kernel<bf, bf>),
        PrepareKernel(convert_kernel<bf, float>), PrepareKernel(convert_kernel<float, bf>),
        PrepareKernel(convert_kernel<float, float>), PrepareKernel(gather_rows_kernel), PrepareKernel(argmax_kernel),
        PrepareKernel(attention_merge_kernel)}) {
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t LaunchEmbedding(const LaunchContext& ctx, const __nv_bfloat16* table, int64_t hidden, const int32_t* ids,
                            float* out, int64_t out_stride, int rows) {
  return Launch(ctx, embedding_kernel, dim3(rows), dim3(256), 0, table, hidden, ids, out, out_stride);
}

cudaError_t LaunchRmsNorm(const LaunchContext& ctx, const float* x, int64_t x_stride, const float* w, float eps, int n,
                          void* out, bool out_bf16, int64_t out_stride, int rows) {
  const dim3 grid((rows + kRmsNormRowsPerBlock - 1) / kRmsNormRowsPerBlock), block(32 * kRmsNormRowsPerBlock);
  if (out_bf16) {
    return Launch(ctx, rmsnorm_kernel<__nv_bfloat16>, grid, block, 0, x, x_stride, w, eps, n, rows,
                  static_cast<__nv_bfloat16*>(out), out_stride);
  }
  return Launch(ctx, rmsnorm_kernel<float>, grid, block, 0, x, x_stride, w, eps, n, rows, static_cast<float*>(out),
                out_stride);
}

cudaError_t LaunchRopeKv(const LaunchContext& ctx, const RopeKvParams& p) {
  if (p.head_dim % 8 != 0) return cudaErrorInvalidValue;
  return Launch(ctx, rope_kv_kernel, dim3(p.rows), dim3(128), 0, p);
}

cudaError_t LaunchKvMove(const LaunchContext& ctx, __nv_bfloat16* k, __nv_bfloat16* v, int64_t capacity, int num_kv_heads,
                         int head_dim, const int32_t* src, const int32_t* dst, int n) {
  if (n == 0) return cudaSuccess;
  const size_t smem = size_t(32) * 2 * head_dim * sizeof(__nv_bfloat16);
  return Launch(ctx, kv_move_kernel, dim3(num_kv_heads), dim3(256), smem, k, v, capacity, head_dim, src, dst, n);
}

cudaError_t LaunchSiluMul(const LaunchContext& ctx, const __nv_bfloat16* gu, int64_t gu_stride, int inter,
                          __nv_bfloat16* out, int64_t out_stride, int rows) {
  return Launch(ctx, silu_mul_kernel, dim3(rows), dim3(256), 0, gu, gu_stride, inter, out, out_stride);
}

cudaError_t LaunchAdd(const LaunchContext& ctx, float* x, int64_t x_stride, const void* y, bool y_bf16, int64_t y_stride,
                      int n, int rows) {
  if (y_bf16) {
    return Launch(ctx, add_kernel<__nv_bfloat16>, dim3(rows), dim3(256), 0, x, x_stride,
                  static_cast<const __nv_bfloat16*>(y), y_stride, n);
  }
  return Launch(ctx, add_kernel<float>, dim3(rows), dim3(256), 0, x, x_stride, static_cast<const float*>(y), y_stride, n);
}

cudaError_t LaunchConvert(const LaunchContext& ctx, const void* x, bool x_bf16, int64_t x_stride, void* out, bool out_bf16,
                          int64_t out_stride, int n, int rows) {
  using bf = __nv_bfloat16;
  const dim3 grid(rows), block(256);
  if (x_bf16 && out_bf16)
    return Launch(ctx, convert_kernel<bf, bf>, grid, block, 0, static_cast<const bf*>(x), x_stride, static_cast<bf*>(out),
                  out_stride, n);
  if (x_bf16)
    return Launch(ctx, convert_kernel<bf, float>, grid, block, 0, static_cast<const bf*>(x), x_stride,
                  static_cast<float*>(out), out_stride, n);
  if (out_bf16)
    return Launch(ctx, convert_kernel<float, bf>, grid, block, 0, static_cast<const float*>(x), x_stride,
                  static_cast<bf*>(out), out_stride, n);
  return Launch(ctx, convert_kernel<float, float>, grid, block, 0, static_cast<const float*>(x), x_stride,
                static_cast<float*>(out), out_stride, n);
}

cudaError_t LaunchGatherRows(const LaunchContext& ctx, const void* x, int64_t x_stride_bytes, const int32_t* rows,
                             void* out, int64_t out_stride_bytes, int64_t row_bytes, int n) {
  if (row_bytes % 4 != 0 || x_stride_bytes % 4 != 0 || out_stride_bytes % 4 != 0) return cudaErrorInvalidValue;
  return Launch(ctx, gather_rows_kernel, dim3(n), dim3(256), 0, static_cast<const char*>(x), x_stride_bytes, rows,
                static_cast<char*>(out), out_stride_bytes, row_bytes);
}

cudaError_t LaunchArgmax(const LaunchContext& ctx, const float* logits, int64_t stride, int n, int32_t* out, int rows) {
  return Launch(ctx, argmax_kernel, dim3(rows), dim3(256), 0, logits, stride, n, out);
}

cudaError_t LaunchAttentionMerge(const LaunchContext& ctx, const __nv_bfloat16* a, int64_t a_stride, const float* lse_a,
                                 const __nv_bfloat16* b, int64_t b_stride, const float* lse_b, __nv_bfloat16* out,
                                 int64_t out_stride, int num_heads, int head_dim, int rows) {
  return Launch(ctx, attention_merge_kernel, dim3(rows), dim3(256), 0, a, a_stride, lse_a, b, b_stride, lse_b, out,
                out_stride, num_heads, head_dim);
}

}  // namespace longspec::cuda
