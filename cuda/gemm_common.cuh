// What every GEMM kernel computes and shares: y = x W^T (+ b) with bf16 operands on tensor
// cores and fp32 accumulation, for every row count from a single decode row to a prefill chunk.
//
// Invariant (what makes speculative greedy equal plain greedy): K is cut into fixed chunks of
// kGemmChunkK = 256 (the last one may be shorter). Each chunk's partial sum of an output element
// is one chain of mma.m16n8k16 steps over its k ascending, from 0; the output is
// ((0 + p0) + p1) + ... in chunk order, then the bias. Every kernel computes exactly that
// sequence of operations: the tile kernel (gemm_tile.cuh) walks the chunks one after another in
// one thread (a running total plus the chunk's accumulator), the split-K kernel (gemm_splitk.cuh)
// gives chunks to different warps and adds their partials in chunk order. So a row's bits are the
// same whether it is computed alone, among 68 tree rows or inside a prefill chunk, and which
// kernel runs is free to depend on the row count.
//
// Layout: x [M, K] row-major (row stride x_stride, K % 8 == 0, 16-byte aligned rows). W is packed
// once at load time (the CUDA backend's CreateLinear) in MMA fragment order: per n8 tile (8 output
// rows) and 32 k, 512 bytes, a tile's blocks consecutive along k, so every W read streams one
// contiguous stretch and lands in registers as B fragments without shuffling. K is padded to a
// multiple of 64 with zeros, so every kernel walks the same ceil(K / 64) * 4 k-steps.
//
// Epilogues: store (bf16 or fp32), accumulate into an fp32 residual, SwiGLU (W rows interleaved
// as 8 gate rows then the 8 matching up rows; out = silu(gate) * up), argmax (packed
// value/index keys folded with atomicMax: a max is exact in any order), and RoPE + KV write of a
// fused qkv row (split-K kernel only: a block takes two n8 tiles of a head's first half and the
// matching two of its second half, so each rotation pair meets in one warp; the output rounded to
// bf16 is rotated with the arithmetic of the standalone RoPE kernel, same bits).
//
// The kernels: gemm_tile.cuh (any M: verification trees, prefill) and gemm_splitk.cuh (up to 16
// rows, and 16-row slices of up to 128 over narrow weights); gemm.cuh includes all three.
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#include "ptx.cuh"

namespace longspec::cuda {

enum class GemmEpilogue : int { kStoreBf16, kStoreF32, kAccumulateF32, kSiluMulBf16, kArgmax, kRopeKvBf16 };

// Packed weight: 8-row tiles in groups of four (32 rows); for each group and 64-k stage kt the
// four tiles' 1 KB stages follow each other (4 KB), a group's stages consecutive, so a block of
// whole groups reads one contiguous stretch per stage and DRAM rows are read through. A tile's
// stage is two 32-k blocks of 256 elements; in a block, lane (r = lane / 4, c = lane % 4) holds
// four 32-bit words: row 8j + r at k = 32s + 2c (+1), 32s + 8 + 2c (+1) (the B fragment of k-step
// 2s), then 32s + 16 + 2c, 32s + 24 + 2c (k-step 2s + 1). Rows past N and k past K are zero.
constexpr int kGemmTileRows = 8, kGemmBlockK = 32, kGemmBlockElems = kGemmTileRows * kGemmBlockK;
constexpr int kGemmGroupTiles = 4;
constexpr int kGemmChunkTiles = 4;  // 64-k stages per K chunk (kGemmChunkK = 256)
constexpr int kGemmChunkK = 64 * kGemmChunkTiles;

__host__ __device__ constexpr int GemmKTiles(int k) { return (k + 63) / 64; }
__host__ __device__ constexpr int GemmKChunks(int k) { return (k + kGemmChunkK - 1) / kGemmChunkK; }
__host__ __device__ constexpr int GemmPaddedTiles(int n) {
  return (n + kGemmTileRows * kGemmGroupTiles - 1) / (kGemmTileRows * kGemmGroupTiles) * kGemmGroupTiles;
}
// Element offset of tile j's stage kt (1 KB: its two 32-k blocks).
__host__ __device__ constexpr int64_t GemmTileStageOffset(int j, int kt, int k_tiles) {
  return ((int64_t(j / kGemmGroupTiles) * k_tiles + kt) * kGemmGroupTiles + j % kGemmGroupTiles) * 2 * kGemmBlockElems;
}

struct GemmParams {
  const __nv_bfloat16* x = nullptr;  // [M, K]
  int64_t x_stride = 0;
  const __nv_bfloat16* w = nullptr;  // packed (see above)
  const float* bias = nullptr;       // [N] or nullptr
  int M = 0, N = 0, K = 0;
  void* out = nullptr;               // [M, N] (kSiluMulBf16: [M, N / 2]); unused by kArgmax
  int64_t out_stride = 0;
  // kAccumulateF32 only (or null): each updated output also stored here rounded to bf16 [M, N].
  __nv_bfloat16* out_copy = nullptr;
  int64_t out_copy_stride = 0;
  unsigned long long* argmax = nullptr;  // [M] packed keys (kArgmax), zeroed before the launch
  // Split-K kernel launch shape: row slices of 16, consecutive column blocks per block, and for
  // splits along K over blocks (gridDim.z > 1) the chunk partials and per-tile counters.
  int row_slices = 1, columns_per_block = 1;
  bool early_trigger = false;  // split-K kernel: the next kernel may launch before this one waits
  int bulk_splits = 0;  // bulk-stream kernel: 0 whole column blocks a block, S > 0 clusters of S splits of K
  float* k_partials = nullptr;
  unsigned* k_counters = nullptr;
  // Input RMSNorm (split-K kernel with NORM only): x = RmsNorm(norm_x) * norm_w, norm_x [M, K]
  // fp32 with row stride x_stride (16-byte aligned rows), norm_w [K] fp32; x itself is unused.
  const float* norm_x = nullptr;
  const float* norm_w = nullptr;
  float norm_eps = 0.0f;
  // With norm_x: call row r normalises norm_x row norm_rows[r] (a gather of the rows a step's
  // logits come from, folded into the LM head); nullptr: row r.
  const int32_t* norm_rows = nullptr;
  // kRopeKvBf16: out is the qkv rows [q heads | k heads | v heads] of head_dim each; q and k heads
  // rotated by rope_cos / rope_sin [M, head_dim / 2], k and v heads also stored at cache slot
  // kv_slots[r] of k_cache / v_cache [num_kv_heads][kv_capacity][head_dim]. num_kv_heads 0: the
  // rows are num_q_heads rotated heads, no cache (the caches and slots may be null).
  const float* rope_cos = nullptr;
  const float* rope_sin = nullptr;
  const int32_t* kv_slots = nullptr;
  __nv_bfloat16* k_cache = nullptr;
  __nv_bfloat16* v_cache = nullptr;
  int64_t kv_capacity = 0;
  int num_q_heads = 0, num_kv_heads = 0, head_dim = 0;
};

// Orders floats as unsigned integers (larger float -> larger key); NaN is never passed in.
__device__ __forceinline__ unsigned long long argmax_key(float v, int index) {
  const uint32_t b = __float_as_uint(v);
  const uint32_t ordered = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  // Ties go to the lower index: it has the larger complement.
  return (static_cast<unsigned long long>(ordered) << 32) | static_cast<uint32_t>(0xffffffffu - index);
}

// Stores one output of the store / fp32 / residual-accumulate epilogues (bias already added).
template <GemmEpilogue EP>
__device__ __forceinline__ void gemm_store(const GemmParams& p, int row, int col, float v) {
  if constexpr (EP == GemmEpilogue::kStoreBf16) {
    static_cast<__nv_bfloat16*>(p.out)[int64_t(row) * p.out_stride + col] = __float2bfloat16_rn(v);
  } else if constexpr (EP == GemmEpilogue::kStoreF32) {
    static_cast<float*>(p.out)[int64_t(row) * p.out_stride + col] = v;
  } else {
    float& o = static_cast<float*>(p.out)[int64_t(row) * p.out_stride + col];
    o += v;
    if (p.out_copy != nullptr) p.out_copy[int64_t(row) * p.out_copy_stride + col] = __float2bfloat16_rn(o);
  }
}

// Writes a warp's accumulators: MT m16 tiles from row m0, WN n8 tiles from column n0.
template <GemmEpilogue EP, int MT, int WN>
__device__ __forceinline__ void gemm_epilogue(const GemmParams& p, const float (&acc)[MT][WN][4], int m0, int n0, int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int i = 0; i < MT; ++i) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = m0 + i * 16 + g + half * 8;
      const bool row_ok = row < p.M;
      if constexpr (EP == GemmEpilogue::kArgmax) {
        unsigned long long best = 0;
#pragma unroll
        for (int j = 0; j < WN; ++j) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int col = n0 + j * 8 + 2 * t + e;
            if (col < p.N) {
              const float v = acc[i][j][half * 2 + e] + (p.bias ? p.bias[col] : 0.0f);
              if (v == v) {
                const unsigned long long key = argmax_key(v, col);
                best = key > best ? key : best;
              }
            }
          }
        }
#pragma unroll
        for (int o = 1; o < 4; o <<= 1) {
          const unsigned long long other = __shfl_xor_sync(0xffffffffu, best, o);
          best = other > best ? other : best;
        }
        if (row_ok && t == 0 && best != 0) atomicMax(p.argmax + row, best);
      } else if constexpr (EP == GemmEpilogue::kSiluMulBf16) {
        static_assert(WN % 2 == 0, "SwiGLU pairs a gate n8 tile with its up tile");
        if (!row_ok) continue;
        __nv_bfloat16* out = static_cast<__nv_bfloat16*>(p.out) + int64_t(row) * p.out_stride;
#pragma unroll
        for (int j = 0; j < WN; j += 2) {
          const int n_gate = n0 + j * 8;  // a multiple of 16: 8 gate rows then the 8 up rows
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int col = n_gate + 2 * t + e;
            if (col < p.N) {
              float gv = acc[i][j][half * 2 + e], uv = acc[i][j + 1][half * 2 + e];
              if (p.bias) {
                gv += p.bias[col];
                uv += p.bias[col + 8];
              }
              const float silu = gv / (1.0f + __expf(-gv));
              out[n_gate / 2 + 2 * t + e] = __float2bfloat16_rn(silu * uv);
            }
          }
        }
      } else {
        if (!row_ok) continue;
#pragma unroll
        for (int j = 0; j < WN; ++j) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int col = n0 + j * 8 + 2 * t + e;
            if (col >= p.N) continue;
            gemm_store<EP>(p, row, col, acc[i][j][half * 2 + e] + (p.bias ? p.bias[col] : 0.0f));
          }
        }
      }
    }
  }
}

}  // namespace longspec::cuda
