// y = x W^T (+ b) with bf16 operands on tensor cores and fp32 accumulation, for every row count
// from a single decode row to a prefill chunk.
//
// Invariant (what makes speculative greedy equal plain greedy): every output element is
// accumulated by one thread as a chain of mma.m16n8k16 steps over k = 0, 16, 32, ... ascending,
// from 0, then the bias is added. No tiling choice changes that chain: the tiles below differ in
// how many rows and columns a block holds, never in how K is walked (no split-K), so a row's bits
// are the same whether it is computed alone, among 68 tree rows or inside a prefill chunk.
//
// Layout: x [M, K] row-major (row stride x_stride, K % 8 == 0, 16-byte aligned rows). W is packed
// once at load time (the CUDA backend's CreateLinear) in MMA fragment order: per n8 tile (8 output
// rows) and 32 k, 512 bytes, a tile's blocks consecutive along k, so every W read streams one
// contiguous stretch and lands in registers as B fragments without shuffling. K is padded to a
// multiple of 64 with zeros, so every kernel walks the same ceil(K / 64) * 4 k-steps.
//
// A block stages BK = 64 columns of its x rows (padded rows, ldmatrix) and its W tiles per
// pipeline stage through cp.async, STAGES deep; each warp owns MT m16 tiles and WN n8 tiles. For
// decode rows (M <= 16) a block is four warps of one n8 tile each (two for SwiGLU) over one m16
// tile, twelve stages deep: many warps per SM, few instructions per byte of weights.
//
// Epilogues: store (bf16 or fp32), accumulate into an fp32 residual, SwiGLU (W rows interleaved
// as 8 gate rows then the 8 matching up rows; out = silu(gate) * up), and argmax (packed
// value/index keys folded with atomicMax: a max is exact in any order).
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#include "ptx.cuh"

namespace longspec::cuda {

enum class GemmEpilogue : int { kStoreBf16, kStoreF32, kAccumulateF32, kSiluMulBf16, kArgmax };

// Packed weight: 8-row tiles in groups of four (32 rows); for each group and 64-k stage kt the
// four tiles' 1 KB stages follow each other (4 KB), a group's stages consecutive, so a block of
// whole groups reads one contiguous stretch per stage and DRAM rows are read through. A tile's
// stage is two 32-k blocks of 256 elements; in a block, lane (r = lane / 4, c = lane % 4) holds
// four 32-bit words: row 8j + r at k = 32s + 2c (+1), 32s + 8 + 2c (+1) (the B fragment of k-step
// 2s), then 32s + 16 + 2c, 32s + 24 + 2c (k-step 2s + 1). Rows past N and k past K are zero.
constexpr int kGemmTileRows = 8, kGemmBlockK = 32, kGemmBlockElems = kGemmTileRows * kGemmBlockK;
constexpr int kGemmGroupTiles = 4;

__host__ __device__ constexpr int GemmKTiles(int k) { return (k + 63) / 64; }
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
  unsigned long long* argmax = nullptr;  // [M] packed keys (kArgmax), zeroed before the launch
};

template <int WARPS_M_, int WARPS_N_, int MT_, int WN_, int STAGES_>
struct GemmTile {
  static constexpr int kWarpsM = WARPS_M_, kWarpsN = WARPS_N_, kMT = MT_, kWN = WN_, kStages = STAGES_;
  static constexpr int kBM = 16 * kMT * kWarpsM;
  static constexpr int kBN = 8 * kWN * kWarpsN;
  static constexpr int kBK = 64;
  static constexpr int kLd = kBK + 8;  // bf16 elements per staged x row
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  static constexpr size_t kSmemBytes = size_t(kStages) * (kBM * kLd + kBN * kBK) * sizeof(__nv_bfloat16);
};

// Orders floats as unsigned integers (larger float -> larger key); NaN is never passed in.
__device__ __forceinline__ unsigned long long argmax_key(float v, int index) {
  const uint32_t b = __float_as_uint(v);
  const uint32_t ordered = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  // Ties go to the lower index: it has the larger complement.
  return (static_cast<unsigned long long>(ordered) << 32) | static_cast<uint32_t>(0xffffffffu - index);
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
            const float v = acc[i][j][half * 2 + e] + (p.bias ? p.bias[col] : 0.0f);
            if constexpr (EP == GemmEpilogue::kStoreBf16) {
              static_cast<__nv_bfloat16*>(p.out)[int64_t(row) * p.out_stride + col] = __float2bfloat16_rn(v);
            } else if constexpr (EP == GemmEpilogue::kStoreF32) {
              static_cast<float*>(p.out)[int64_t(row) * p.out_stride + col] = v;
            } else {
              static_cast<float*>(p.out)[int64_t(row) * p.out_stride + col] += v;
            }
          }
        }
      }
    }
  }
}

// B fragment of n8 tile (packed, 1 KB per 64-k stage) for k-step kk (0..3) of the stage.
__device__ __forceinline__ void load_b_fragment(const __nv_bfloat16* stage_tile, int kk, int lane, uint32_t& b0,
                                                uint32_t& b1) {
  const uint2 v = *reinterpret_cast<const uint2*>(stage_tile + (kk >> 1) * kGemmBlockElems + lane * 8 + (kk & 1) * 4);
  b0 = v.x;
  b1 = v.y;
}

template <class T, GemmEpilogue EP>
__global__ void __launch_bounds__(T::kThreads) gemm_bf16_kernel(const GemmParams p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* As = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [stages][BM][Ld]
  __nv_bfloat16* Ws = As + size_t(T::kStages) * T::kBM * T::kLd;   // [stages][BN / 8 tiles][2 blocks]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / T::kWarpsN, wn = warp % T::kWarpsN;
  const int m0 = blockIdx.y * T::kBM, n0 = blockIdx.x * T::kBN;
  const int k_tiles = GemmKTiles(p.K);

  // Copies with compile-time trip counts and per-thread bases (a few instructions per 16 bytes).
  // x: thread tid copies rows xr0 + i * kXStep at column xc of each stage.
  constexpr int kXStep = T::kThreads / 8, kXPer = T::kBM * 8 / T::kThreads;
  static_assert(T::kThreads % 8 == 0 && (T::kBM * 8) % T::kThreads == 0, "x pieces per thread");
  const int xr0 = tid / 8, xc = (tid % 8) * 8;
  const __nv_bfloat16* x_thread = p.x + int64_t(m0 + xr0) * p.x_stride + xc;
  const int64_t x_step = int64_t(kXStep) * p.x_stride;
  // W: a stage of a group of four tiles is 256 pieces of 16 bytes; piece tid + i * T lies in
  // group (i * T) / 256 (T divides 256), at position (tid + i * T) % 256.
  constexpr int kGroupPieces = kGemmGroupTiles * 2 * kGemmBlockElems / 8;
  constexpr int kWPer = T::kBN * 8 / T::kThreads;
  static_assert(kGroupPieces % T::kThreads == 0 || T::kThreads % kGroupPieces == 0, "W pieces per thread");
  static_assert(T::kBN % (kGemmTileRows * kGemmGroupTiles) == 0, "a block holds whole tile groups");
  const int group0 = n0 / (kGemmTileRows * kGemmGroupTiles);
  const int n_groups = GemmPaddedTiles(p.N) / kGemmGroupTiles;
  const __nv_bfloat16* w_group0 = p.w + int64_t(group0) * k_tiles * kGroupPieces * 8;

  auto load_w = [&](int stage, int kt) {
    __nv_bfloat16* dst = Ws + size_t(stage) * T::kBN * T::kBK;
#pragma unroll
    for (int i = 0; i < kWPer; ++i) {
      const int gi = (i * T::kThreads) / kGroupPieces;
      const int pos = (tid + i * T::kThreads) % kGroupPieces;
      const bool ok = group0 + gi < n_groups;
      const __nv_bfloat16* src = ok ? w_group0 + (int64_t(gi) * k_tiles + kt) * kGroupPieces * 8 + pos * 8 : p.w;
      cp_async_16(dst + gi * kGroupPieces * 8 + pos * 8, src, ok);
    }
  };
  auto load_x = [&](int stage, int kt) {
    const int k0 = kt * T::kBK;
    __nv_bfloat16* dst = As + size_t(stage) * T::kBM * T::kLd + xr0 * T::kLd + xc;
    const bool k_ok = k0 + xc < p.K;
#pragma unroll
    for (int i = 0; i < kXPer; ++i) {
      const bool ok = k_ok && m0 + xr0 + i * kXStep < p.M;
      const __nv_bfloat16* src = ok ? x_thread + i * x_step + k0 : p.x;
      cp_async_16(dst + i * kXStep * T::kLd, src, ok);
    }
  };

  // Weights never depend on the previous kernel: start streaming them before waiting for it.
  for (int s = 0; s < T::kStages - 1; ++s)
    if (s < k_tiles) load_w(s, s);
  pdl_wait();
  for (int s = 0; s < T::kStages - 1; ++s) {
    if (s < k_tiles) load_x(s, s);
    cp_async_commit();
  }

  float acc[T::kMT][T::kWN][4];
#pragma unroll
  for (int i = 0; i < T::kMT; ++i)
#pragma unroll
    for (int j = 0; j < T::kWN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  for (int kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<T::kStages - 2>();
    __syncthreads();
    const int next = kt + T::kStages - 1;
    if (next < k_tiles) {
      load_w(next % T::kStages, next);
      load_x(next % T::kStages, next);
    }
    cp_async_commit();

    const __nv_bfloat16* a_st = As + size_t(kt % T::kStages) * T::kBM * T::kLd;
    const __nv_bfloat16* w_st = Ws + size_t(kt % T::kStages) * T::kBN * T::kBK;
#pragma unroll
    for (int kk = 0; kk < T::kBK / 16; ++kk) {
      uint32_t a[T::kMT][4];
#pragma unroll
      for (int i = 0; i < T::kMT; ++i) {
        const int row = wm * 16 * T::kMT + i * 16 + (lane & 15);
        ldmatrix_x4(a[i], a_st + row * T::kLd + kk * 16 + (lane >> 4) * 8);
      }
#pragma unroll
      for (int j = 0; j < T::kWN; ++j) {
        uint32_t b0, b1;
        load_b_fragment(w_st + (wn * T::kWN + j) * 2 * kGemmBlockElems, kk, lane, b0, b1);
#pragma unroll
        for (int i = 0; i < T::kMT; ++i) mma_bf16(acc[i][j], a[i], b0, b1);
      }
    }
  }
  cp_async_wait<0>();
  pdl_launch_dependents();
  gemm_epilogue<EP>(p, acc, m0 + wm * 16 * T::kMT, n0 + wn * 8 * T::kWN, lane);
}

// Folds packed argmax keys into token ids (an all-NaN row, key 0, gives 0).
__global__ void argmax_keys_to_ids_kernel(const unsigned long long* keys, int32_t* ids, int rows);

}  // namespace longspec::cuda
