// A candidate GEMM for 17..80 rows on Hopper's warpgroup MMA (sm_90a), weights in registers.
// Not part of the library: bench/gpu/gemm_tiles.cu (WGMMA=1) times it beside the tiles the launcher
// uses. Measured on an H200 (bench/results/logs/gemm_wgmma_2026-11-30.txt): bit-identical to
// them at every shape, but slower (Llama-8B gate_up at 69 rows 126 us against 95 for the 80 x 256
// tile; LM head 478 against 363): each chunk ends with a full wait for its MMAs and a barrier, the
// weight prefetch is one chunk deep and 255 registers leave one block per SM. What it shows is
// the mechanism (weights as register A fragments straight from the packed layout, x by
// descriptor, equal bits); a faster version needs a deeper weight pipeline with the MMAs left in
// flight across chunks.
//
// The verification GEMMs of a tree are thin: 69 rows against 4096 x 28672 weights. The mma.sync
// tiles (gemm.cuh) read every weight byte once but spend more time in their MMAs and their
// ldmatrix reads of x than the weights take to stream. Here the roles swap: the weight is wgmma's
// A operand (64 output columns per warpgroup) and x its B operand (kNX rows, the instruction's N).
// The packed weight layout is already A-fragment order: a warp's 16 weight rows are two n8 tiles,
// and a lane's 16-byte piece of a tile's 32-k block holds that tile's B fragments of two k-steps,
// which are exactly half of the A fragment of the 16 rows (a0/a2 from the first tile, a1/a3 from
// the second). So weights go straight from global memory into registers, a whole 256-k chunk
// ahead, and never touch shared memory; x is staged per chunk in wgmma's no-swizzle core-matrix
// layout and read by descriptor.
//
// Bits: the same reduction order as every other GEMM kernel (gemm_common.cuh): per output, each 256-k
// chunk's partial is one chain of k16 steps ascending from a zeroed accumulator, added to the
// running total in chunk order; a wgmma k16 step gives the bits of the mma.sync step it replaces
// (bench/gpu/wgmma_parity.cu, checked on the card), so a row computed here equals the same row
// computed by the decode kernels.
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#include "gemm.cuh"
#include "wgmma.cuh"

namespace longspec::cuda {

// NX: x rows per block (wgmma's N). WGS: warpgroups per block, 64 output columns each.
template <int NX_, int WGS_>
struct GemmWgTile {
  static constexpr int kNX = NX_, kWGS = WGS_;
  static_assert(kNX % 16 == 0 && kNX <= 80, "x rows: a multiple of 16 (wgmma N) up to 80");
  static constexpr int kThreads = 128 * kWGS;
  static constexpr int kBN = 64 * kWGS;
  // One chunk of x: groups of 8 rows, each 8 rows x 256 k as 32 core matrices of 128 bytes.
  static constexpr int kRowGroupBytes = 8 * kGemmChunkK * 2;
  static constexpr int kXChunkBytes = kNX / 8 * kRowGroupBytes;
  static constexpr size_t kSmemBytes = 2 * size_t(kXChunkBytes);  // double buffered
};

// Grid: x = column blocks of kBN, y = row blocks of kNX. Block: kThreads.
template <class T, GemmEpilogue EP>
__global__ void __launch_bounds__(T::kThreads, 1) gemm_bf16_wgmma_kernel(const GemmParams p) {
  extern __shared__ __align__(128) unsigned char x_smem[];  // [2][kNX / 8][32 core matrices]
  constexpr int kNX = T::kNX, kAcc = kNX / 2;
  constexpr int kStageElems = kGemmGroupTiles * 2 * kGemmBlockElems;  // a tile's next 64-k stage
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wq = warp % 4, g = lane >> 2, t = lane & 3;
  const int n0 = blockIdx.x * T::kBN + (warp / 4) * 64;  // the warpgroup's first output column
  const int m0 = blockIdx.y * kNX;
  const int k_tiles = GemmKTiles(p.K), chunks = GemmKChunks(p.K);
  // The warp's two n8 tiles; padded tiles come in groups of four, so both exist or neither.
  const int tile0 = n0 / kGemmTileRows + 2 * wq;
  const bool tiles_ok = tile0 < GemmPaddedTiles(p.N);
  const __nv_bfloat16* w_tile0 = p.w + (tiles_ok ? GemmTileStageOffset(tile0, 0, k_tiles) : 0) + lane * 8;
  const __nv_bfloat16* w_tile1 = p.w + (tiles_ok ? GemmTileStageOffset(tile0 + 1, 0, k_tiles) : 0) + lane * 8;

  // A lane's pieces of chunk c: [stage][tile][32-k block] (zero past K or past the padded tiles).
  using ChunkW = uint4[kGemmChunkTiles][2][2];
  auto load_w = [&](int c, ChunkW& w) {
#pragma unroll
    for (int i = 0; i < kGemmChunkTiles; ++i) {
      const int kt = c * kGemmChunkTiles + i;
      if (tiles_ok && kt < k_tiles) {
        const int64_t at = int64_t(kt) * kStageElems;
        w[i][0][0] = ldg_stream_16(w_tile0 + at);
        w[i][0][1] = ldg_stream_16(w_tile0 + at + kGemmBlockElems);
        w[i][1][0] = ldg_stream_16(w_tile1 + at);
        w[i][1][1] = ldg_stream_16(w_tile1 + at + kGemmBlockElems);
      } else {
        w[i][0][0] = w[i][0][1] = w[i][1][0] = w[i][1][1] = make_uint4(0, 0, 0, 0);
      }
    }
  };
  // Chunk c of x rows m0.. into buffer `buf`: row n, k piece kp (8 k) at byte (n / 8) * row
  // group + kp * 128 + (n % 8) * 16. Eight consecutive threads take eight rows of one piece: each
  // 8-thread phase writes one whole core matrix. Rows past M and k past K are zero.
  auto stage_x = [&](int c, int buf) {
    unsigned char* dst = x_smem + buf * T::kXChunkBytes;
    constexpr int kPieces = kNX * (kGemmChunkK / 8);
#pragma unroll
    for (int i0 = 0; i0 < kPieces; i0 += T::kThreads) {
      const int i = i0 + tid;
      if (kPieces % T::kThreads != 0 && i >= kPieces) break;
      const int n = (i & 7) + 8 * (i >> 8), kp = (i >> 3) & 31;
      const int k = c * kGemmChunkK + kp * 8;
      const bool ok = m0 + n < p.M && k < p.K;
      const __nv_bfloat16* src = ok ? p.x + int64_t(m0 + n) * p.x_stride + k : p.x;
      cp_async_16(dst + (n >> 3) * T::kRowGroupBytes + kp * 128 + (n & 7) * 16, src, ok);
    }
  };

  ChunkW w_even, w_odd;
  // Weights never depend on the previous kernel: start streaming them before waiting for it.
  load_w(0, w_even);
  pdl_wait();
  stage_x(0, 0);
  cp_async_commit();

  float total[kAcc];
#pragma unroll
  for (int e = 0; e < kAcc; ++e) total[e] = 0.0f;
  auto run_chunk = [&](int c, const ChunkW& cur, ChunkW& nxt) {
    if (c + 1 < chunks) load_w(c + 1, nxt);
    cp_async_wait<0>();
    fence_proxy_async_shared();  // this thread's copies of chunk c are read by wgmma next
    // Chunk c's x is in place, and every warpgroup is done with chunk c - 1's buffer.
    __syncthreads();
    if (c + 1 < chunks) stage_x(c + 1, (c + 1) & 1);
    cp_async_commit();
    const unsigned char* xb = x_smem + (c & 1) * T::kXChunkBytes;
    float acc[kAcc];
#pragma unroll
    for (int e = 0; e < kAcc; ++e) acc[e] = 0.0f;
    wgmma_fence_operands(acc);
    wgmma_fence();
#pragma unroll
    for (int i = 0; i < kGemmChunkTiles; ++i) {
      if (c * kGemmChunkTiles + i >= k_tiles) break;  // the same for the whole warpgroup
#pragma unroll
      for (int kb = 0; kb < 2; ++kb)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const uint4 &u0 = cur[i][0][kb], &u1 = cur[i][1][kb];
          const uint32_t a[4] = {h ? u0.z : u0.x, h ? u1.z : u1.x, h ? u0.w : u0.y, h ? u1.w : u1.y};
          const int ks = i * 4 + kb * 2 + h;  // k-step of the chunk: 32 bytes of every x row
          wgmma_m64nk16<kNX, 0>(acc, a, wgmma_desc(xb + ks * 256, 128, T::kRowGroupBytes), 1);
        }
    }
    wgmma_commit();
    wgmma_wait<0>();
    wgmma_fence_operands(acc);
#pragma unroll
    for (int e = 0; e < kAcc; ++e) total[e] += acc[e];
  };
  for (int c = 0; c < chunks; c += 2) {
    run_chunk(c, w_even, w_odd);
    if (c + 1 < chunks) run_chunk(c + 1, w_odd, w_even);
  }
  pdl_launch_dependents();

  // total[4j + e]: output column n0 + 16 wq + g + 8 (e / 2) (a weight row), x row m0 + 8j + 2t +
  // e % 2. The SwiGLU pairs (8 gate rows then their 8 up rows) are the two column halves.
  const int col_lo = n0 + 16 * wq + g, col_hi = col_lo + 8;
#pragma unroll
  for (int j = 0; j < kNX / 8; ++j) {
#pragma unroll
    for (int e1 = 0; e1 < 2; ++e1) {
      const int row = m0 + 8 * j + 2 * t + e1;
      const float lo = total[4 * j + e1], hi = total[4 * j + 2 + e1];
      if constexpr (EP == GemmEpilogue::kArgmax) {
        unsigned long long best = 0;
        if (col_lo < p.N) {
          const float v = lo + (p.bias ? p.bias[col_lo] : 0.0f);
          if (v == v) best = argmax_key(v, col_lo);
        }
        if (col_hi < p.N) {
          const float v = hi + (p.bias ? p.bias[col_hi] : 0.0f);
          if (v == v) {
            const unsigned long long key = argmax_key(v, col_hi);
            best = key > best ? key : best;
          }
        }
#pragma unroll
        for (int o = 4; o < 32; o <<= 1) {  // over g: the warp's 16 columns of this row
          const unsigned long long other = __shfl_xor_sync(0xffffffffu, best, o);
          best = other > best ? other : best;
        }
        if (g == 0 && row < p.M && best != 0) atomicMax(p.argmax + row, best);
      } else if constexpr (EP == GemmEpilogue::kSiluMulBf16) {
        if (row < p.M && col_lo < p.N) {
          float gv = lo, uv = hi;
          if (p.bias) {
            gv += p.bias[col_lo];
            uv += p.bias[col_hi];
          }
          const float silu = gv / (1.0f + __expf(-gv));
          static_cast<__nv_bfloat16*>(p.out)[int64_t(row) * p.out_stride + (col_lo - g) / 2 + g] =
              __float2bfloat16_rn(silu * uv);
        }
      } else {
        if (row < p.M) {
          if (col_lo < p.N) gemm_store<EP>(p, row, col_lo, lo + (p.bias ? p.bias[col_lo] : 0.0f));
          if (col_hi < p.N) gemm_store<EP>(p, row, col_hi, hi + (p.bias ? p.bias[col_hi] : 0.0f));
        }
      }
    }
  }
}

}  // namespace longspec::cuda
