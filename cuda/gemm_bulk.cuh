// The bulk-stream kernel of the GEMM for decode rows and small trees (M <= 16): one block per SM, a producer warp
// streams the block's share of the packed weight into a ring of shared-memory slots with bulk
// copies (cp.async.bulk, completion on an mbarrier per slot), and a consumer warp per slot
// multiplies.
//
// Why: the split-K kernel (gemm_splitk.cuh) keeps each warp's next chunk of W in registers, so an
// SM has at most one round (64 KB) in flight, and none while its 16 warps meet at a round's
// barriers; the H200 held its decode GEMMs at 2.0-2.7 TB/s of 4.4 (Qwen2.5-1.5B gate_up 20.5 us
// for a 12.5 us floor). Here the ring keeps up to eight 16 KB units in flight per SM whatever the
// consumers do, and no thread issues a load instruction for W.
//
// Work: a unit is one 256-k chunk of one 32-column block (16 KB of the packed layout, less for
// a last short chunk), and units run column block after column block, chunk after chunk, which
// is also their order in memory. Block b takes the column blocks [b C / B, (b + 1) C / B) whole,
// so one contiguous stretch of W: the launcher runs this kernel only where every SM gets a column
// block and the busiest SM's share is within 20% of the even one (gemm.cu, BulkRuns). With S
// slots, consumer warp w owns slot w and takes the block's units w, w + S, ...: all four n8 tiles
// of a unit (four independent MMA chains), from x staged whole in shared memory once. (A warp
// that owns its slot never waits on a barrier phase two ahead of the one it last saw, which
// parity waits cannot tell apart.)
//
// Order (what keeps the bits of every other kernel, gemm_common.cuh): a unit's partial is its
// chunk's MMA chain from 0; a column block's total is 0 + p0 + p1 + ... in chunk order. The
// consumers take turns (an mbarrier per consumer warp, on which the warp before it arrives once it
// has added) to add their units' partials to the column block's running total in unit order; the
// warp of a column block's last unit takes the totals and runs the epilogue.
//
// Narrow weights (fewer column blocks than SMs: qkv, o and down of the models here), where the
// launcher takes them (gemm.cu, BulkRuns), run split along K (p.bulk_splits = S >= 1): a cluster of S blocks per column block, block s streaming the
// chunks [s chunks / S, (s + 1) chunks / S), one contiguous stretch, and keeping each unit's
// partial in its shared memory; after a cluster barrier block 0 adds every chunk's partial in
// chunk order, reading the others' shared memory (distributed shared memory), and runs the
// epilogue; a second barrier keeps the others' shared memory until it has. No turns, no
// global workspace, no atomics. x is staged for the block's chunks only.
//
// Tried and not kept (H200, 2026-12-02, bench/results/gpu_gemm_bulk_2026-12-02.md): even runs of
// units over all SMs (stream-K; a column block cut between blocks finished by the last to arrive
// from partials in the workspace): slower on every decode shape (1.5B qkv 6.2 us against 3.5,
// Llama-8B down 52 against 30), the cut blocks' fix-ups on the critical path.
#pragma once

#include <cooperative_groups.h>

#include "gemm_splitk.cuh"

namespace longspec::cuda {

constexpr int kGemmBulkRowsMax = 16;
// Slots of the ring, one consumer warp each; warp 0 is the producer.
constexpr int kGemmBulkSlotsMax = 8, kGemmBulkSlotsMin = 4;
constexpr int kGemmBulkThreadsMax = 32 * (1 + kGemmBulkSlotsMax);
constexpr int kGemmBulkUnitBytes = kGemmChunkTiles * kGemmColumnTiles * 2 * kGemmBlockElems * 2;  // 16 KB
constexpr int kGemmBulkZeroBytes = kGemmChunkK * 2;  // the A rows past M read zeros (one chunk's row)
constexpr int kGemmBulkTotalLd = kGemmColumnCols + 4;  // running totals [row][column], padded

// Chunks a block streams at most: all of a column block's, or with S splits the largest split's.
__host__ __device__ constexpr int GemmBulkChunksMax(int k, int splits) {
  return splits > 0 ? (GemmKChunks(k) + splits - 1) / splits : GemmKChunks(k);
}
// x staged for the block's chunks: their columns (all of K padded to 64 when whole), + 8
// elements a row (rows 16 bytes apart in the banks).
__host__ __device__ constexpr int GemmBulkXLd(int k, int splits) {
  return (splits > 0 ? GemmBulkChunksMax(k, splits) * kGemmChunkK : GemmKTiles(k) * 64) + 8;
}
__host__ __device__ constexpr size_t GemmBulkXBytes(int m, int k, int splits) {
  return (size_t(m) * GemmBulkXLd(k, splits) * 2 + 15) / 16 * 16;
}
// Split along K: every unit's partials [chunk][row][32] fp32.
__host__ __device__ constexpr size_t GemmBulkPartialBytes(int m, int k, int splits) {
  return splits > 0 ? size_t(GemmBulkChunksMax(k, splits)) * m * kGemmColumnCols * 4 : 0;
}
// The kernel's static shared memory (barriers, running totals, the norm's row scales) is under
// this; its dynamic shared memory may take the rest of a block's.
constexpr size_t kGemmBulkStaticSmemMax = 3072;
// Dynamic shared memory: the ring, x, the zero row, the partials.
__host__ __device__ constexpr size_t GemmBulkSmemBytes(int slots, int m, int k, int splits) {
  return size_t(slots) * kGemmBulkUnitBytes + GemmBulkXBytes(m, k, splits) + kGemmBulkZeroBytes +
         GemmBulkPartialBytes(m, k, splits);
}

template <GemmEpilogue EP, bool NORM = false>
__global__ void __launch_bounds__(kGemmBulkThreadsMax, 1) gemm_bf16_bulk_kernel(const GemmParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) unsigned char bulk_smem[];
  __shared__ __align__(8) uint64_t full[kGemmBulkSlotsMax], empty[kGemmBulkSlotsMax];
  __shared__ __align__(16) float totals[kGemmBulkRowsMax * kGemmBulkTotalLd];
  // turn[w]: consumer warp w may add unit i once warp w - 1 (mod S) has added unit i - 1.
  __shared__ __align__(8) uint64_t turn[kGemmBulkSlotsMax];
  __shared__ float row_inv[NORM ? kGemmBulkRowsMax : 1];
  static_assert(sizeof(full) + sizeof(empty) + sizeof(totals) + sizeof(turn) + sizeof(row_inv) <= kGemmBulkStaticSmemMax,
                "the static shared memory the launcher leaves room for");
  const int slots = blockDim.x / 32 - 1;  // = consumer warps
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int k_tiles = GemmKTiles(p.K), chunks = GemmKChunks(p.K);
  const int columns = GemmPaddedTiles(p.N) / kGemmColumnTiles, splits = p.bulk_splits;
  // The block's column blocks and, for each, its chunks [c0, c1): whole column blocks, or one
  // column block's split `rank` (the block's rank in its cluster of S).
  int col_begin, col_end, c0 = 0, c1 = chunks, rank = 0;
  if (splits > 0) {
    col_begin = blockIdx.x / splits;
    col_end = col_begin + 1;
    rank = int(cooperative_groups::this_cluster().block_rank());  // blockIdx.x % splits
    c0 = rank * chunks / splits;
    c1 = (rank + 1) * chunks / splits;
  } else {
    col_begin = int(int64_t(blockIdx.x) * columns / gridDim.x);
    col_end = int(int64_t(blockIdx.x + 1) * columns / gridDim.x);
  }
  const int nc = c1 - c0, units = (col_end - col_begin) * nc;
  unsigned char* ring = bulk_smem;
  const int x_ld = GemmBulkXLd(p.K, splits);
  unsigned char* after_ring = bulk_smem + size_t(slots) * kGemmBulkUnitBytes;
  __nv_bfloat16* x_s = reinterpret_cast<__nv_bfloat16*>(after_ring);
  __nv_bfloat16* zero = reinterpret_cast<__nv_bfloat16*>(after_ring + GemmBulkXBytes(p.M, p.K, splits));
  float* partials = reinterpret_cast<float*>(after_ring + GemmBulkXBytes(p.M, p.K, splits) + kGemmBulkZeroBytes);
  if (tid < slots) {
    mbarrier_init(&full[tid], 1);
    mbarrier_init(&empty[tid], 32);  // every lane of the consuming warp
    mbarrier_init(&turn[tid], 32);   // every lane of the warp before
  }
  for (int i = tid; i < kGemmBulkRowsMax * kGemmBulkTotalLd; i += blockDim.x) totals[i] = 0.0f;
  fence_mbarrier_init();
  __syncthreads();
  if (p.early_trigger) pdl_launch_dependents();

  if (warp == 0) {
    // The producer: W never depends on the previous kernel, so the ring fills before the wait.
    if (lane == 0) {
      const uint64_t policy = l2_evict_first_policy();
      for (int i = 0; i < units; ++i) {
        const int slot = i % slots;
        if (i >= slots) mbarrier_wait(&empty[slot], ((i / slots) - 1) & 1);
        const int col = col_begin + i / nc, c = c0 + i % nc;
        const int stages = min(kGemmChunkTiles, k_tiles - c * kGemmChunkTiles);
        constexpr int kStageBytes = kGemmColumnTiles * 2 * kGemmBlockElems * 2;  // a column block's 64-k stage
        mbarrier_arrive_expect_tx(&full[slot], stages * kStageBytes);
        unsigned char* dst = ring + size_t(slot) * kGemmBulkUnitBytes;
        if constexpr (EP == GemmEpilogue::kRopeKvBf16) {
          // The block's tiles are two pairs from two packed groups: a copy per pair and stage.
          for (int s = 0; s < stages; ++s) {
            for (int h = 0; h < 2; ++h) {
              const __nv_bfloat16* src =
                  p.w + GemmTileStageOffset(gemm_column_tile<EP>(p, col, 2 * h), c * kGemmChunkTiles + s, k_tiles);
              bulk_copy_g2s(dst + s * kStageBytes + h * (kStageBytes / 2), src, kStageBytes / 2, &full[slot], policy);
            }
          }
        } else {
          const __nv_bfloat16* src = p.w + GemmTileStageOffset(col * kGemmColumnTiles, c * kGemmChunkTiles, k_tiles);
          bulk_copy_g2s(dst, src, stages * kStageBytes, &full[slot], policy);
        }
      }
    }
    if (splits == 0) {
      if (!p.early_trigger) pdl_launch_dependents();
      return;
    }
  } else {
    // Consumers (warps 1..slots; threads ct = tid - 32 among themselves).
    const int cw = warp - 1, ct = tid - 32, slot = cw;
    const GroupBarrier consumers{1, 32 * slots};
    pdl_wait();
    if constexpr (NORM) {  // warp w: rows w, w + slots, ...: their inverse RMS
      for (int r = cw; r < p.M; r += slots) {
        const float inv = rms_inverse(rms_sum_squares(gemm_norm_row(p, r), p.K, lane), p.K, p.norm_eps);
        if (lane == 0) row_inv[r] = inv;
      }
      consumers.sync();
    }
    // x rows 0..M-1 over the block's chunks (from column k0), 8 columns a piece, zero from K on
    // (as the split-K kernel stages them).
    const int k0 = c0 * kGemmChunkK, pieces = min(nc * kGemmChunkK, k_tiles * 64 - k0) / 8;
    for (int i = ct; i < p.M * pieces; i += 32 * slots) {
      const int row = i / pieces, kl = (i % pieces) * 8, k = k0 + kl;
      __nv_bfloat16* dst = x_s + row * x_ld + kl;
      if constexpr (NORM) {
        uint4 packed = make_uint4(0, 0, 0, 0);
        if (k < p.K) {
          const float4* h = reinterpret_cast<const float4*>(gemm_norm_row(p, row) + k);
          const float4* w = reinterpret_cast<const float4*>(p.norm_w + k);
          packed = rms_apply_pack8(h[0], h[1], __ldg(w), __ldg(w + 1), row_inv[row]);
        }
        *reinterpret_cast<uint4*>(dst) = packed;
      } else {
        const bool ok = k < p.K;
        cp_async_16(dst, ok ? p.x + int64_t(row) * p.x_stride + k : p.x, ok);
      }
    }
    if (ct < kGemmBulkZeroBytes / 16) reinterpret_cast<uint4*>(zero)[ct] = make_uint4(0, 0, 0, 0);
    cp_async_commit();
    cp_async_wait<0>();
    consumers.sync();

    // ldmatrix row addresses. Up to 8 rows, .x2: lanes 0-7 give rows 0-7 at k, lanes 8-15 at k + 8
    // (a0 and a2 of the A fragment; a1 and a3, rows 8-15, stay zero: an MMA's output row depends on
    // its A row only). 9-16 rows, .x4 as the split-K kernel: lane l gives row l % 16 at
    // k + (l / 16) * 8 (a0, a1, a2, a3).
    const bool a_x4 = p.M > 8;
    const int a_row = a_x4 ? lane & 15 : lane & 7, a_k = a_x4 ? (lane >> 4) * 8 : ((lane >> 3) & 1) * 8;
    const __nv_bfloat16* a_base = a_row < p.M ? x_s + a_row * x_ld + a_k : nullptr;
    const int g = lane >> 2, t = lane & 3;

    for (int i = cw; i < units; i += slots) {
      const int col = col_begin + i / nc, c = c0 + i % nc;
      mbarrier_wait(&full[slot], (i / slots) & 1);
      const uint4* b_slot = reinterpret_cast<const uint4*>(ring + size_t(slot) * kGemmBulkUnitBytes) + lane;
      const __nv_bfloat16* a_lane = a_base != nullptr ? a_base + (c - c0) * kGemmChunkK : zero + a_k;
      float acc[kGemmColumnTiles][4] = {};
#pragma unroll
      for (int s = 0; s < kGemmChunkTiles; ++s) {
        if (c * kGemmChunkTiles + s >= k_tiles) break;
        uint4 b[kGemmColumnTiles][2];  // stage s of the four tiles: 1 KB each, two 512-byte blocks
#pragma unroll
        for (int j = 0; j < kGemmColumnTiles; ++j) {
          b[j][0] = b_slot[(s * kGemmColumnTiles + j) * 64];
          b[j][1] = b_slot[(s * kGemmColumnTiles + j) * 64 + 32];
        }
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          uint32_t a[4] = {0u, 0u, 0u, 0u};
          if (a_x4) {
            ldmatrix_x4(a, a_lane + s * 64 + kk * 16);
          } else {
            ldmatrix_x2(a[0], a[2], a_lane + s * 64 + kk * 16);
          }
#pragma unroll
          for (int j = 0; j < kGemmColumnTiles; ++j) {
            const uint4& bj = b[j][kk >> 1];
            mma_bf16(acc[j], a, (kk & 1) ? bj.z : bj.x, (kk & 1) ? bj.w : bj.y);
          }
        }
      }
      mbarrier_arrive(&empty[slot]);  // the slot's fragments are in registers

      // Lane (g, t) holds rows g and g + 8 (acc[j][0..1], acc[j][2..3]), columns 8 j + 2 t, + 1.
      if (splits > 0) {  // the unit's partials, for block 0 of the cluster
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int row = g + 8 * half;
          if (row >= p.M) continue;
          float* dst = partials + ((c - c0) * p.M + row) * kGemmColumnCols + 2 * t;
#pragma unroll
          for (int j = 0; j < kGemmColumnTiles; ++j) {
            dst[j * kGemmTileRows] = acc[j][2 * half];
            dst[j * kGemmTileRows + 1] = acc[j][2 * half + 1];
          }
        }
        continue;
      }
      // This unit's turn: every earlier unit of the block has added its partial. Unit i - 1 was
      // the ((i - 1) / S)-th arrival on this warp's barrier (a warp waits on its own barrier only,
      // so no phase it waits for is two ahead).
      if (i > 0) mbarrier_wait(&turn[slot], ((i - 1) / slots) & 1);
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = g + 8 * half;
        if (row >= p.M) continue;
#pragma unroll
        for (int j = 0; j < kGemmColumnTiles; ++j) {
          float* running = totals + row * kGemmBulkTotalLd + j * kGemmTileRows + 2 * t;
          running[0] += acc[j][2 * half];
          running[1] += acc[j][2 * half + 1];
        }
      }
      __syncwarp();
      // The column block's last unit: its totals (lane = column, row r) leave the shared running
      // totals zero for the next column block before the turn passes on.
      const bool last_chunk = c == chunks - 1;
      float tot[kGemmBulkRowsMax];
      if (last_chunk) {
#pragma unroll
        for (int r = 0; r < kGemmBulkRowsMax; ++r) {
          if (r < p.M) {
            tot[r] = totals[r * kGemmBulkTotalLd + lane];
            totals[r * kGemmBulkTotalLd + lane] = 0.0f;
          }
        }
        __syncwarp();
      }
      mbarrier_arrive(&turn[(slot + 1) % slots]);  // release: the totals written above
      if (last_chunk) {
#pragma unroll
        for (int r = 0; r < kGemmBulkRowsMax; ++r)
          if (r < p.M) gemm_column_epilogue<EP>(p, col, r, lane, tot[r]);
      }
    }
  }
  if (splits > 0) {  // every thread of the cluster, the producer warps too
    namespace cg = cooperative_groups;
    const cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();  // every split's partials are in its shared memory
    if (rank == 0 && warp > 0) {
      // Block 0 adds the chunk partials in chunk order: consumer warp w, rows w, w + slots, ...
      for (int r = warp - 1; r < p.M; r += slots) {
        float total = 0.0f;
        for (int s = 0; s < splits; ++s) {
          const float* theirs = cluster.map_shared_rank(partials, s);
          const int s0 = s * chunks / splits, s1 = (s + 1) * chunks / splits;
          constexpr int kBatch = 8;  // loads in flight together, additions in order
          for (int cb = s0; cb < s1; cb += kBatch) {
            float v[kBatch];
#pragma unroll
            for (int j = 0; j < kBatch; ++j)
              if (cb + j < s1) v[j] = theirs[((cb + j - s0) * p.M + r) * kGemmColumnCols + lane];
#pragma unroll
            for (int j = 0; j < kBatch; ++j)
              if (cb + j < s1) total += v[j];
          }
        }
        gemm_column_epilogue<EP>(p, col_begin, r, lane, total);
      }
    }
    cluster.sync();  // the other blocks' partials stay until block 0 has read them
  }
  if (!p.early_trigger) pdl_launch_dependents();
#endif
}

}  // namespace longspec::cuda
