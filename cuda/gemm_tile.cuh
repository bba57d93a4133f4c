// The tile kernel of the GEMM (any M; gemm_common.cuh has the reduction order it keeps and the
// packed weight layout it reads).
//
// Tile kernel (any M): a block stages BK = 64, 128 or 256 columns of its x rows (padded rows,
// ldmatrix) and its W tiles per pipeline stage through cp.async, STAGES deep; each warp owns MT
// m16 tiles and WN n8 tiles (warps may split the rows: a warp whose rows all lie past M idles).
#pragma once

#include "gemm_common.cuh"

namespace longspec::cuda {

// BK: k columns per pipeline stage (64, 128 or 256: one, two or four packed 64-k stages). A
// stage is one barrier for every warp; deeper stages pay it, and the latency of each warp's
// chain of copies, ldmatrix and MMAs behind it, once per more bytes.
template <int WARPS_M_, int WARPS_N_, int MT_, int WN_, int STAGES_, int BK_ = 64>
struct GemmTile {
  static constexpr int kWarpsM = WARPS_M_, kWarpsN = WARPS_N_, kMT = MT_, kWN = WN_, kStages = STAGES_;
  static_assert(BK_ == 64 || BK_ == 128 || BK_ == 256, "a stage is whole 64-k parts of one chunk");
  static constexpr int kBM = 16 * kMT * kWarpsM;
  static constexpr int kBN = 8 * kWN * kWarpsN;
  static constexpr int kBK = BK_;
  static constexpr int kSub = kBK / 64;                        // packed 64-k stages per stage
  static constexpr int kStagesPerChunk = kGemmChunkTiles / kSub;
  static constexpr int kLd = kBK + 8;  // bf16 elements per staged x row
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  static constexpr size_t kSmemBytes = size_t(kStages) * (kBM * kLd + kBN * kBK) * sizeof(__nv_bfloat16);
};

// The tiles' shared memory holds one or two blocks per SM, so asking for one costs no occupancy
// and leaves the registers to the block: with the bare thread bound, ptxas capped the 80 x 32
// tile at 128 registers once GemmParams grew (166 before; 174 with this bound), and Llama-8B's
// narrow GEMMs at 69 rows took 1.9x as long.
template <class T, GemmEpilogue EP>
__global__ void __launch_bounds__(T::kThreads, 1) gemm_bf16_kernel(const GemmParams p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* As = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [stages][BM][Ld]
  __nv_bfloat16* Ws = As + size_t(T::kStages) * T::kBM * T::kLd;   // [stages][BK / 64][BN / 8 tiles][2 blocks]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / T::kWarpsN, wn = warp % T::kWarpsN;
  const int m0 = blockIdx.y * T::kBM, n0 = blockIdx.x * T::kBN;
  // The packed weight's 64-k stages (K padded to 64), and the block's stages of kSub of them;
  // past the last packed one a stage's remaining 64-k parts are neither copied nor multiplied.
  const int k_tiles64 = GemmKTiles(p.K);
  const int k_stages = (k_tiles64 + T::kSub - 1) / T::kSub;

  // Copies with compile-time trip counts and per-thread bases (a few instructions per 16 bytes).
  // x: thread tid copies rows xr0 + i * kXStep at column xc of each stage.
  // When the threads do not divide the tile's pieces (80 rows over 256 threads), the last copy of
  // some threads falls past the tile and is skipped.
  constexpr int kRowPieces = T::kBK / 8;
  constexpr int kXStep = T::kThreads / kRowPieces, kXPer = (T::kBM * kRowPieces + T::kThreads - 1) / T::kThreads;
  constexpr bool kXRagged = (T::kBM * kRowPieces) % T::kThreads != 0;
  static_assert(T::kThreads % kRowPieces == 0, "x pieces per thread");
  const int xr0 = tid / kRowPieces, xc = (tid % kRowPieces) * 8;
  const __nv_bfloat16* x_thread = p.x + int64_t(m0 + xr0) * p.x_stride + xc;
  const int64_t x_step = int64_t(kXStep) * p.x_stride;
  // W: a 64-k stage of a group of four tiles is 256 pieces of 16 bytes; piece q = tid + i * T of
  // a block stage lies in its 64-k part q / kSubPieces, group (q % kSubPieces) / 256, position q % 256.
  // With more threads than pieces or a count that does not divide them (five warps over 256
  // pieces), the last piece of some threads is skipped, as for x.
  constexpr int kGroupPieces = kGemmGroupTiles * 2 * kGemmBlockElems / 8;
  constexpr int kSubPieces = T::kBN * 8, kWPieces = kSubPieces * T::kSub;
  constexpr int kWPer = (kWPieces + T::kThreads - 1) / T::kThreads;
  constexpr bool kWRagged = kWPieces % T::kThreads != 0;
  static_assert(T::kBN % (kGemmTileRows * kGemmGroupTiles) == 0, "a block holds whole tile groups");
  const int group0 = n0 / (kGemmTileRows * kGemmGroupTiles);
  const int n_groups = GemmPaddedTiles(p.N) / kGemmGroupTiles;
  const __nv_bfloat16* w_group0 = p.w + int64_t(group0) * k_tiles64 * kGroupPieces * 8;

  auto load_w = [&](int stage, int ks) {
    __nv_bfloat16* dst = Ws + size_t(stage) * T::kBN * T::kBK;
#pragma unroll
    for (int i = 0; i < kWPer; ++i) {
      const int q = tid + i * T::kThreads;
      if (kWRagged && q >= kWPieces) break;
      const int u = q / kSubPieces, gi = (q % kSubPieces) / kGroupPieces, pos = q % kGroupPieces;
      const int kt = ks * T::kSub + u;
      const bool ok = group0 + gi < n_groups && kt < k_tiles64;
      const __nv_bfloat16* src = ok ? w_group0 + (int64_t(gi) * k_tiles64 + kt) * kGroupPieces * 8 + pos * 8 : p.w;
      cp_async_16(dst + (u * kSubPieces + gi * kGroupPieces + pos) * 8, src, ok);
    }
  };
  auto load_x = [&](int stage, int ks) {
    const int k0 = ks * T::kBK;
    __nv_bfloat16* dst = As + size_t(stage) * T::kBM * T::kLd + xr0 * T::kLd + xc;
    const bool k_ok = k0 + xc < p.K;
#pragma unroll
    for (int i = 0; i < kXPer; ++i) {
      if (kXRagged && xr0 + i * kXStep >= T::kBM) break;
      const bool ok = k_ok && m0 + xr0 + i * kXStep < p.M;
      const __nv_bfloat16* src = ok ? x_thread + i * x_step + k0 : p.x;
      cp_async_16(dst + i * kXStep * T::kLd, src, ok);
    }
  };

  // Weights never depend on the previous kernel: start streaming them before waiting for it.
  for (int s = 0; s < T::kStages - 1; ++s)
    if (s < k_stages) load_w(s, s);
  pdl_wait();
  for (int s = 0; s < T::kStages - 1; ++s) {
    if (s < k_stages) load_x(s, s);
    cp_async_commit();
  }

  // A warp whose rows all lie past M (a tile split along M among its warps, 33 rows in an
  // 80-row tile) still copies its share of every stage but multiplies nothing: its rows are
  // never stored, so a row's bits are unchanged and the tile's MMAs follow the real rows.
  const bool warp_has_rows = m0 + wm * 16 * T::kMT < p.M;
  float acc[T::kMT][T::kWN][4], total[T::kMT][T::kWN][4];
#pragma unroll
  for (int i = 0; i < T::kMT; ++i)
#pragma unroll
    for (int j = 0; j < T::kWN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = total[i][j][e] = 0.0f;

  for (int ks = 0; ks < k_stages; ++ks) {
    cp_async_wait<T::kStages - 2>();
    __syncthreads();
    const int next = ks + T::kStages - 1;
    if (next < k_stages) {
      load_w(next % T::kStages, next);
      load_x(next % T::kStages, next);
    }
    cp_async_commit();

    const __nv_bfloat16* a_st = As + size_t(ks % T::kStages) * T::kBM * T::kLd;
    const __nv_bfloat16* w_st = Ws + size_t(ks % T::kStages) * T::kBN * T::kBK;
    if (warp_has_rows) {
#pragma unroll
      for (int kb = 0; kb < T::kBK / 32; ++kb) {
        const int u = kb / 2;  // the stage's 64-k part
        if (T::kSub > 1 && ks * T::kSub + u >= k_tiles64) break;
        // A lane's 16 bytes of a tile's 32-k block hold its B fragments of both k-steps: one
        // conflict-free 16-byte read per lane instead of two 8-byte reads at a 16-byte stride.
        uint4 b[T::kWN];
#pragma unroll
        for (int j = 0; j < T::kWN; ++j) {
          b[j] = *reinterpret_cast<const uint4*>(w_st + u * T::kBN * 64 +
                                                 ((wn * T::kWN + j) * 2 + kb % 2) * kGemmBlockElems + lane * 8);
        }
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int kk = kb * 2 + half;
          uint32_t a[T::kMT][4];
#pragma unroll
          for (int i = 0; i < T::kMT; ++i) {
            const int row = wm * 16 * T::kMT + i * 16 + (lane & 15);
            ldmatrix_x4(a[i], a_st + row * T::kLd + kk * 16 + (lane >> 4) * 8);
          }
#pragma unroll
          for (int j = 0; j < T::kWN; ++j) {
            const uint32_t b0 = half ? b[j].z : b[j].x, b1 = half ? b[j].w : b[j].y;
#pragma unroll
            for (int i = 0; i < T::kMT; ++i) mma_bf16(acc[i][j], a[i], b0, b1);
          }
        }
      }
    }
    // A chunk (kGemmChunkTiles 64-k parts) ends with this stage, or K does.
    if ((ks + 1) % T::kStagesPerChunk == 0 || ks == k_stages - 1) {
#pragma unroll
      for (int i = 0; i < T::kMT; ++i)
#pragma unroll
        for (int j = 0; j < T::kWN; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            total[i][j][e] += acc[i][j][e];
            acc[i][j][e] = 0.0f;
          }
    }
  }
  cp_async_wait<0>();
  pdl_launch_dependents();
  gemm_epilogue<EP>(p, total, m0 + wm * 16 * T::kMT, n0 + wn * 8 * T::kWN, lane);
}

}  // namespace longspec::cuda
