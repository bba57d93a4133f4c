// The prefix part of attention for decode-sized calls (at most 16 packed queries per KV head:
// rows * group <= 16), split states only: attention_prefix_kernel<HD, 1, kAttnSplitStates>'s
// results, bit for bit, from four warps per block instead of one.
//
// Why: a decode step has few work units (splits of 256 keys per KV head: 96 for SmolLM2 at 8k,
// 256 for Qwen2.5-0.5B at 32k), so a one-warp block leaves most SMs with a single warp walking its
// split's four chunks as one long chain of dependent MMAs. Here the four warps share each chunk:
//   - warp w computes the scores of key tiles 2w and 2w + 1 (16 keys) over the whole head dim:
//     the same MMAs, in the same k order, as the one-warp kernel's tiles 2w and 2w + 1;
//   - the chunk's max per query row is the max of the warps' maxima (a max is exact in any
//     order); every warp then updates its copy of the running (m, l) identically;
//   - the probabilities go through shared memory, and every warp sums a row's 64 of them in the
//     one-warp kernel's order (tile by tile, element by element, then the quad butterfly);
//   - warp w multiplies P by V for its quarter of the output tiles, keys in order: the one-warp
//     kernel's MMA sequence for those accumulators.
// So the state written for a split is the one the one-warp kernel writes (attention.cuh states the
// reduction order), and the finishing pass is unchanged.
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#include "attention.cuh"
#include "ptx.cuh"

namespace longspec::cuda {

constexpr int kDecodeWarps = 4;
constexpr int kDecodeQueries = 16;

// A split's four chunks in flight at head_dim 64; two at 128 (two blocks per SM either way).
template <int HD>
constexpr int DecodeStages() {
  return HD <= 64 ? 4 : 2;
}

template <int HD>
struct DecodeSmem {
  static constexpr int kLd = HD + 8;
  static constexpr int kStages = DecodeStages<HD>();
  static constexpr int kPLd = kAttnChunkKeys + 4;  // probabilities [16][64] fp32, padded rows
  static constexpr size_t kQBytes = size_t(kDecodeQueries) * kLd * 2;
  static constexpr size_t kKvBytes = size_t(2) * kStages * kAttnChunkKeys * kLd * 2;
  static constexpr size_t kPBytes = size_t(kDecodeQueries) * kPLd * 4;
  static constexpr size_t kMaxBytes = size_t(kDecodeWarps) * kDecodeQueries * 4;
  static constexpr size_t kBytes = kQBytes + kKvBytes + kPBytes + kMaxBytes;
};

// Grid: (1, num_kv_heads, gz): block z owns splits z, z + gz, ... of its KV head. 128 threads.
template <int HD>
__global__ void __launch_bounds__(32 * kDecodeWarps) attention_decode_prefix_kernel(const AttnPrefixParams p) {
  using Smem = DecodeSmem<HD>;
  constexpr int kLd = Smem::kLd, kKS = Smem::kStages, kPLd = Smem::kPLd;
  constexpr int kDT = HD / 8;               // n8 tiles of the output
  constexpr int kWarpDT = kDT / kDecodeWarps;  // this warp's output tiles (2 or 4)
  constexpr int kThreads = 32 * kDecodeWarps;
  static_assert(kAttnChunkKeys == 8 * 2 * kDecodeWarps, "a warp scores two key tiles of a chunk");
  static_assert(kWarpDT % 2 == 0, "output tiles go in pairs (one ldmatrix.x4.trans)");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem_raw);                               // [16][kLd]
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem_raw + Smem::kQBytes);               // [kKS][64][kLd]
  __nv_bfloat16* Vs = Ks + kKS * kAttnChunkKeys * kLd;                                          // [kKS][64][kLd]
  float* Ps = reinterpret_cast<float*>(smem_raw + Smem::kQBytes + Smem::kKvBytes);              // [16][kPLd]
  float* warp_max = Ps + kDecodeQueries * kPLd;                                                 // [4][16]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int group = p.num_heads / p.num_kv_heads;
  const int kvh = blockIdx.y;
  const int q_total = p.rows * group;  // <= 16

  // Keys that precede the step (p.keys_precede_step) are loaded before the wait for the kernel
  // before this one, which wrote q alone; the lengths come from the step's plan. Either way the
  // finishing kernel may launch only once this block has waited: what it reads before its own
  // wait (q and the rows' K/V) was written by that kernel (attention_finish.cuh).
  const bool early_keys = p.keys_precede_step;
  auto wait_previous = [&]() {
    pdl_wait();
    pdl_launch_dependents();
  };
  if (!early_keys) wait_previous();
  int len_mine[2];
#pragma unroll
  for (int hrow = 0; hrow < 2; ++hrow) {
    const int qi = g + hrow * 8;
    len_mine[hrow] = qi < q_total ? __ldcg(p.kv_len + qi / group) : 0;
  }
  __shared__ int block_len, block_min_len;
  if (tid == 0) {
    block_len = 0;
    block_min_len = 0x7fffffff;
  }
  __syncthreads();
  if (tid < q_total) {
    const int len = __ldcg(p.kv_len + tid / group);
    atomicMax(&block_len, len);
    atomicMin(&block_min_len, len);
  }
  __syncthreads();
  const int L = block_len, L_min = block_min_len;
  auto chunk_start = [&](int q) -> int {
    return (blockIdx.z + (q / kAttnChunksPerSplit) * gridDim.z) * kAttnSplit + (q % kAttnChunksPerSplit) * kAttnChunkKeys;
  };
  if (chunk_start(0) >= L) {
    if (early_keys) wait_previous();
    return;
  }

  // Queries into shared memory (zero rows past the last): with the first chunk, or in a group of
  // their own after the wait (early_keys).
  auto issue_queries = [&]() {
    for (int c = tid; c < kDecodeQueries * (HD / 8); c += kThreads) {
      const int qi = c / (HD / 8), col = (c % (HD / 8)) * 8;
      const bool ok = qi < q_total;
      const __nv_bfloat16* src = p.q;
      if (ok) src = p.q + int64_t(qi / group) * p.q_stride + int64_t(kvh * group + qi % group) * HD + col;
      cp_async_16(Qs + qi * kLd + col, src, ok);
    }
  };
  if (!early_keys) issue_queries();
  constexpr int kPieces = HD / 8, kRowStep = kThreads / kPieces;
  static_assert(kThreads % kPieces == 0, "pieces of a row never straddle threads");
  const int row0 = tid / kPieces, col0 = (tid % kPieces) * 8;
  const __nv_bfloat16* kthread = p.k + int64_t(kvh) * p.capacity * HD + row0 * HD + col0;
  const __nv_bfloat16* vthread = p.v + int64_t(kvh) * p.capacity * HD + row0 * HD + col0;
  __nv_bfloat16* ks_thread = Ks + row0 * kLd + col0;
  __nv_bfloat16* vs_thread = Vs + row0 * kLd + col0;
  auto load_chunk = [&](int buf, int c0) {
    const int64_t off = int64_t(c0) * HD;
    const int rows_left = L - c0 - row0;
#pragma unroll
    for (int i = 0; i < kAttnChunkKeys / kRowStep; ++i) {
      const bool ok = i * kRowStep < rows_left;
      const int64_t src = ok ? off + int64_t(i) * kRowStep * HD : 0;
      const int dst = (buf * kAttnChunkKeys + i * kRowStep) * kLd;
      cp_async_16(ks_thread + dst, kthread + src, ok);
      cp_async_16(vs_thread + dst, vthread + src, ok);
    }
  };
  for (int q = 0; q < kKS - 1; ++q) {
    if (chunk_start(q) < L) load_chunk(q, chunk_start(q));
    cp_async_commit();
  }
  if (early_keys) {
    wait_previous();
    issue_queries();
    cp_async_commit();
  }

  uint32_t qf[HD / 16][4];
  float acc[kWarpDT][4];
  float m_split[2], l_split[2];
  auto reset_split = [&]() {
#pragma unroll
    for (int j = 0; j < kWarpDT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[j][e] = 0.0f;
#pragma unroll
    for (int hrow = 0; hrow < 2; ++hrow) {
      m_split[hrow] = -INFINITY;
      l_split[hrow] = 0.0f;
    }
  };
  reset_split();
  // The split's record, as the one-warp kernel writes it: (m, l) once, each warp its output tiles.
  auto write_split = [&](int index) {
#pragma unroll
    for (int hrow = 0; hrow < 2; ++hrow) {
      const int qi = g + hrow * 8;
      if (qi >= q_total) continue;
      const int row = qi / group, head = kvh * group + qi % group;
      float* rec = p.state + ((int64_t(row) * p.num_heads + head) * p.max_states + index) * StateFloats<HD>();
      if (warp == 0 && t == 0) {
        rec[0] = m_split[hrow];
        rec[1] = l_split[hrow];
      }
#pragma unroll
      for (int j = 0; j < kWarpDT; ++j) {
        const int dt = warp * kWarpDT + j;
        *reinterpret_cast<float2*>(rec + kStateHeader + dt * 8 + 2 * t) = make_float2(acc[j][hrow * 2], acc[j][hrow * 2 + 1]);
      }
    }
  };

  bool have_q = false;
  for (int q = 0;; ++q) {
    const int c0 = chunk_start(q);
    if (c0 >= L) break;
    const int buf = q % kKS;
    if (chunk_start(q + kKS - 1) < L) load_chunk((q + kKS - 1) % kKS, chunk_start(q + kKS - 1));
    cp_async_commit();
    // Chunk q has landed (and the queries: early_keys puts them in the group before the newest).
    if (early_keys && q == 0) {
      cp_async_wait<1>();
    } else {
      cp_async_wait<kKS - 1>();
    }
    __syncthreads();
    if (!have_q) {
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) ldmatrix_x4(qf[kk], Qs + (lane & 15) * kLd + kk * 16 + (lane >> 4) * 8);
      have_q = true;
    }
    const __nv_bfloat16* kc = Ks + buf * kAttnChunkKeys * kLd;
    const __nv_bfloat16* vc = Vs + buf * kAttnChunkKeys * kLd;

    // Scores of key tiles 2 * warp and 2 * warp + 1.
    float s[2][4];
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[j][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      uint32_t b[4];
      ldmatrix_x4(b, kc + (warp * 16 + (lane & 7) + (lane >> 4) * 8) * kLd + kk * 16 + ((lane >> 3) & 1) * 8);
      mma_bf16(s[0], qf[kk], b[0], b[1]);
      mma_bf16(s[1], qf[kk], b[2], b[3]);
    }
    const bool masked = c0 + kAttnChunkKeys > L_min;
#pragma unroll
    for (int hrow = 0; hrow < 2; ++hrow) {
      if (masked) {
#pragma unroll
        for (int j = 0; j < 2; ++j)
#pragma unroll
          for (int e = 0; e < 2; ++e)
            if (c0 + (2 * warp + j) * 8 + 2 * t + e >= len_mine[hrow]) s[j][hrow * 2 + e] = -INFINITY;
      }
      float mx = fmaxf(fmaxf(s[0][hrow * 2], s[0][hrow * 2 + 1]), fmaxf(s[1][hrow * 2], s[1][hrow * 2 + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      if (t == 0) warp_max[warp * kDecodeQueries + g + hrow * 8] = mx;
    }
    __syncthreads();
    float alpha[2], m_use[2];
#pragma unroll
    for (int hrow = 0; hrow < 2; ++hrow) {
      const int r = g + hrow * 8;
      float mc = warp_max[r];
#pragma unroll
      for (int w = 1; w < kDecodeWarps; ++w) mc = fmaxf(mc, warp_max[w * kDecodeQueries + r]);
      online_max_step(mc, p.scale_log2, m_split[hrow], alpha[hrow], m_use[hrow]);
      // This warp's probabilities into the chunk's row of P.
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e)
          Ps[r * kPLd + (2 * warp + j) * 8 + 2 * t + e] = ex2(__fmaf_rn(s[j][hrow * 2 + e], p.scale_log2, -m_use[hrow]));
    }
    __syncthreads();
    // The row sums in the one-warp kernel's order: tiles 0..7, two elements each, then the quad.
#pragma unroll
    for (int hrow = 0; hrow < 2; ++hrow) {
      const float* prow = Ps + (g + hrow * 8) * kPLd + 2 * t;
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < kAttnChunkKeys / 8; ++j) {
        sum = __fadd_rn(sum, prow[j * 8]);
        sum = __fadd_rn(sum, prow[j * 8 + 1]);
      }
      sum = __fadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, 1));
      sum = __fadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, 2));
      l_split[hrow] = __fadd_rn(__fmul_rn(l_split[hrow], alpha[hrow]), sum);
    }
    if (__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f)) {
#pragma unroll
      for (int j = 0; j < kWarpDT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[j][e] = __fmul_rn(acc[j][e], alpha[e >> 1]);
    }
    // acc += P V over this warp's output tiles, the chunk's four k-steps in order.
    const float* p_lo = Ps + g * kPLd + 2 * t;
    const float* p_hi = p_lo + 8 * kPLd;
#pragma unroll
    for (int i = 0; i < kAttnChunkKeys / 16; ++i) {
      uint32_t pf[4];
      pf[0] = pack_bf16(p_lo[16 * i], p_lo[16 * i + 1]);
      pf[1] = pack_bf16(p_hi[16 * i], p_hi[16 * i + 1]);
      pf[2] = pack_bf16(p_lo[16 * i + 8], p_lo[16 * i + 9]);
      pf[3] = pack_bf16(p_hi[16 * i + 8], p_hi[16 * i + 9]);
#pragma unroll
      for (int d2 = 0; d2 < kWarpDT / 2; ++d2) {
        const int dcol = (warp * kWarpDT / 2 + d2) * 16;
        uint32_t b[4];
        ldmatrix_x4_trans(b, vc + (i * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kLd + dcol + (lane >> 4) * 8);
        mma_bf16(acc[2 * d2], pf, b[0], b[1]);
        mma_bf16(acc[2 * d2 + 1], pf, b[2], b[3]);
      }
    }
    __syncthreads();  // the K/V buffer, P and the maxima are rewritten by later chunks
    const int next = c0 + kAttnChunkKeys;
    if (next % kAttnSplit == 0 || next >= L) {
      write_split(c0 / kAttnSplit);
      reset_split();
    }
  }
}

}  // namespace longspec::cuda
