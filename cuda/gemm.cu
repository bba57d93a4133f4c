// GEMM launcher: picks the kernel by row count and shape (every kernel sums K in the same order,
// see gemm.cuh, so the choice never changes a bit).
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda_ops.h"

namespace longspec::cuda {

namespace {

// Tiles for 17..128 rows (verification of a tree), chosen from bench/gpu/gemm_tiles.cu on an H200
// (bench/results/logs/gemm_tiles_2026-11-30.txt, gemm_tiles_deepk_2026-12-01.txt). A weight's
// columns decide: a narrow one (under 6144 columns) has too few column blocks to fill the GPU, so
// it takes thin blocks of 32 columns; a wide one takes 64-256 columns per block, which reads x
// (from L2) fewer times per weight byte. Measured at 69 rows, us: Llama-8B gate_up 229 -> 95, qkv
// 59 -> 38, LM head 891 -> 370; Qwen2.5-0.5B gate_up 29 -> 16, LM head 250 -> 126.
// A thin block is bound by the latency of its stage loop (every warp waits at one barrier per
// stage behind its chain of copies, ldmatrix and MMAs; Nsight Compute: no unit above half busy),
// not by bytes: so its five warps split the rows (one m16 tile each, a warp past M idle) and a
// stage is a whole 256-k chunk. Against the 80 x 32 tile of two warps and 64-k stages, on one
// card in one run: Llama-8B at 69 rows o 38 -> 27 us, down 124 -> 83; at 33 rows o 37 -> 22,
// down 121 -> 69 (the rows past M cost nothing, so no 48-row tile is needed); Qwen2.5-1.5B down
// at 69 rows 78 -> 52.
using TileNarrow = GemmTile<5, 1, 1, 4, 3, 256>;  // 80 x 32, 5 warps, 256-k stages
using Tile32x128 = GemmTile<1, 4, 2, 4, 6>;       // 32 x 128, 4 warps: wide weights up to 32 rows,
                                                  // narrow ones over 81..128 rows (four row blocks)
using TileWide80 = GemmTile<1, 4, 5, 2, 4>;       // 80 x 64, 4 warps
using TileWide80Deep = GemmTile<1, 8, 5, 4, 3>;   // 80 x 256, 8 warps (many columns, long K)
using TileWide128 = GemmTile<1, 4, 8, 2, 4>;      // 128 x 64, 4 warps
using TilePrefill = GemmTile<2, 4, 4, 4, 3>;      // 128 x 128, 8 warps
constexpr int kGemmWideColumns = 6144;
constexpr int kGemmWideRowsMax = 320;  // the largest tree the verify-range rules take
using SplitK = GemmSplitK<4>;                  // 32 columns, four warps per n8 tile, up to 16 rows

// TileNarrow (172 KB) only where the device's shared memory per block holds it: elsewhere it is
// neither loaded (PrepareEpilogue) nor launched, and its rows take Tile32x128 (LaunchEpilogue).
bool NarrowTileFits(size_t max_smem) { return TileNarrow::kSmemBytes <= max_smem; }

// Row slices of 16 rows, one launch (see gemm_bf16_splitk_kernel).
int SplitKSlices(int m) { return (m + kGemmSplitKRowsMax - 1) / kGemmSplitKRowsMax; }
int SplitKColumnBlocks(int n) { return GemmPaddedTiles(n) / SplitK::kTiles; }

// Splits of K over blocks for a launch of `tiles` (column block, slice) blocks: the count with the
// least modelled time, waves of one-block-per-SM times (the rounds a block walks + one for its
// fixed costs), plus one for storing and re-reading partials when split. 1 for short K (a block
// of so few rounds is bound by its fixed costs) or when the workspace is too small.
int SplitKSplits(const LaunchContext& ctx, int tiles, int k) {
  const int rounds = SplitK::Rounds(k), sms = ctx.num_sms > 0 ? ctx.num_sms : 1;
  const size_t partial_floats = size_t(tiles) * GemmKChunks(k) * kGemmSplitKRowsMax * SplitK::kCols;
  if (rounds < 4 || tiles > ctx.splitk_counter_count || partial_floats > ctx.splitk_partial_floats) return 1;
  int best = 1;
  double best_cost = double((tiles + sms - 1) / sms) * (rounds + 1);
  for (int s = 2; s <= rounds && s <= 16; ++s) {
    const int per = (rounds + s - 1) / s, used = (rounds + per - 1) / per;
    const double cost = double((tiles * used + sms - 1) / sms) * (per + 1) + 1;
    if (cost < best_cost) {
      best = used;
      best_cost = cost;
    }
  }
  return best;
}

// Column blocks per block when K is one round: enough that the grid is about one wave of
// blocks, at least 1.
int SplitKColumnsPerBlock(const LaunchContext& ctx, int columns, int slices, int k) {
  if (SplitK::Rounds(k) > 1) return 1;
  const int sms = ctx.num_sms > 0 ? ctx.num_sms : 1;
  const int groups = std::max(1, sms / slices);
  if (columns <= groups) return 1;
  return (columns + groups - 1) / groups;
}

// Narrow weights take the bulk kernel's clusters (kGemmBulkNarrowMeasured, BulkRuns) over K of at
// least kGemmBulkNarrowKMin, for up to kGemmBulkNarrowRowsMax rows.
constexpr int kGemmBulkNarrowKMin = 8192, kGemmBulkNarrowRowsMax = 8;

// The bulk-stream kernel (gemm_bulk.cuh) for calls of up to kGemmBulkRowsMax rows over weights
// whose 32-column blocks spread over the SMs with the busiest SM's share within 20% of the even
// one (a column block for every SM at least): H200, one row, us against the split-K kernel
// (bench/results/gpu_gemm_bulk_2026-12-02.md): Qwen2.5-1.5B's gate_up (560 column blocks, 4.24
// against 5 a block) 15.7 against 20.4, SmolLM2's LM head 16.3 against 20.0, Llama-8B's gate_up
// 57.0 against 62.3; but Qwen2.5-0.5B's gate_up (304: 2.3 against 3) 7.6 against 7.0. Slots of the
// ring as many as the shared memory left by x allows (at most 8, at least 4), one block per SM.
// Narrow weights (fewer column blocks than SMs) run over clusters where measured faster (below).
// Returns false where it does not run (the split-K kernel takes the call).
bool BulkRuns(const LaunchContext& ctx, const GemmParams& p, int* slots, int* blocks, int* splits) {
  if (!ctx.gemm_bulk || p.M > std::min(kGemmBulkRowsMax, ctx.gemm_bulk_rows_max)) return false;
  const int sms = ctx.num_sms > 0 ? ctx.num_sms : 1, columns = SplitKColumnBlocks(p.N);
  const int per_sm_max = (columns + sms - 1) / sms;
  if (columns >= sms) {
    if (5 * columns < 4 * per_sm_max * sms) return false;
    *splits = 0;
    *blocks = sms;
  } else {
    // Narrow: each column block's K over a cluster of S blocks, as many as fill the SMs (at most
    // 8, the portable cluster size, and a chunk a block at least).
    if (ctx.gemm_bulk_narrow == kGemmBulkNarrowOff) return false;
    *splits = std::max(1, std::min({8, sms / columns, GemmKChunks(p.K)}));
    // Where the H200 measured it faster (bench/results/gpu_gemm_bulk_narrow_2026-12-02.md, us
    // against the split-K kernel): a column block's K split in two or more, long K, up to 8 rows:
    // Qwen2.5-1.5B's down (48 column blocks, K 8960) 10.8 against 13.7 at one row, 12.0 against
    // 14.4 at four (the plain step at 32k 1606 against 1659). Over short K the cluster's launch
    // and final sum are not paid back (the 1.5B's qkv, K 1536: 5.2 against 3.6; SmolLM2's gate_up,
    // one block a column block over K 576: 4.1 against 2.1), nor at 9-16 rows (the 0.5B's down 8.9
    // against 7.6). The 0.5B's down (K 4864) is faster alone (6.0 against 6.6) but its plain step
    // is slower (897 against 874 us; the real model 0.906 against 0.874 ms at 32k): a cluster
    // launch overlaps its neighbours less, so K at least 8192.
    if (ctx.gemm_bulk_narrow == kGemmBulkNarrowMeasured &&
        (*splits < 2 || p.K < kGemmBulkNarrowKMin || p.M > kGemmBulkNarrowRowsMax)) {
      return false;
    }
    *blocks = columns * *splits;
  }
  const size_t fixed = GemmBulkSmemBytes(0, p.M, p.K, *splits), dynamic_max = ctx.max_smem_per_block - kGemmBulkStaticSmemMax;
  if (fixed + size_t(kGemmBulkSlotsMin) * kGemmBulkUnitBytes > dynamic_max) return false;
  *slots = int(std::min<size_t>(kGemmBulkSlotsMax, (dynamic_max - fixed) / kGemmBulkUnitBytes));
  return true;
}

template <GemmEpilogue EP, bool NORM = false>
cudaError_t LaunchBulk(const LaunchContext& ctx, const GemmParams& p_in, int slots, int blocks, int splits) {
  GemmParams p = p_in;
  p.early_trigger = p.M <= ctx.gemm_early_trigger_max_rows;
  p.bulk_splits = splits;
  return LaunchClusters(ctx, gemm_bf16_bulk_kernel<EP, NORM>, dim3(blocks), dim3(32 * (1 + slots)),
                        GemmBulkSmemBytes(slots, p.M, p.K, splits), splits, p);
}

template <GemmEpilogue EP, bool NORM = false>
cudaError_t LaunchSplitK(const LaunchContext& ctx, const GemmParams& p_in) {
  int slots = 0, blocks = 0, bulk_splits = 0;
  if (BulkRuns(ctx, p_in, &slots, &blocks, &bulk_splits)) {
    return LaunchBulk<EP, NORM>(ctx, p_in, slots, blocks, bulk_splits);
  }
  GemmParams p = p_in;
  const int rows = p.M < kGemmSplitKRowsMax ? p.M : kGemmSplitKRowsMax;
  const size_t smem = SplitK::SmemBytes(rows, p.K);  // at most SplitK::kSmemMax, whatever K
  const int slices = SplitKSlices(p.M), columns = SplitKColumnBlocks(p.N);
  p.row_slices = slices;
  p.columns_per_block = SplitKColumnsPerBlock(ctx, columns, slices, p.K);
  p.early_trigger = p.M <= ctx.gemm_early_trigger_max_rows;
  const int groups = (columns + p.columns_per_block - 1) / p.columns_per_block;
  const int splits = p.columns_per_block == 1 ? SplitKSplits(ctx, slices * columns, p.K) : 1;
  const dim3 block(SplitK::kThreads);
  if (splits > 1) {
    p.k_partials = ctx.splitk_partials;
    p.k_counters = ctx.splitk_counters;
    return Launch(ctx, gemm_bf16_splitk_kernel<SplitK, EP, SplitKWalk::kSplitK, NORM>, dim3(slices * groups, 1, splits),
                  block, smem, p);
  }
  if (p.columns_per_block > 1) {
    return Launch(ctx, gemm_bf16_splitk_kernel<SplitK, EP, SplitKWalk::kColumns, NORM>, dim3(slices * groups), block, smem,
                  p);
  }
  return Launch(ctx, gemm_bf16_splitk_kernel<SplitK, EP, SplitKWalk::kOneColumn, NORM>, dim3(slices * groups), block, smem,
                p);
}

template <class T, GemmEpilogue EP>
cudaError_t LaunchTile(const LaunchContext& ctx, const GemmParams& p) {
  const dim3 grid((p.N + T::kBN - 1) / T::kBN, (p.M + T::kBM - 1) / T::kBM);
  return Launch(ctx, gemm_bf16_kernel<T, EP>, grid, dim3(T::kThreads), T::kSmemBytes, p);
}

// Whether the verify range's rules choose the kernel for these rows. Up to 128 rows always.
// Trees of 129..kGemmWideRowsMax nodes follow the same rules (with ctx.wide_rows_gemm) where the
// 128 x 128 prefill tile would leave a third of the GPU idle: a 145-row GEMM of SmolLM2 ran on
// 10-48 of its blocks, 15-31 us where the verify rules take 5-11 (H200,
// bench/results/gpu_wide_trees_2026-12-01.md); Llama-8B's o and down at 300 rows (96 blocks)
// stay on it (74 and 241 us there, 94 and 305 on the verify rules).
bool VerifyRules(const LaunchContext& ctx, const GemmParams& p) {
  if (p.M <= 128) return true;
  const int prefill_blocks =
      ((p.N + TilePrefill::kBN - 1) / TilePrefill::kBN) * ((p.M + TilePrefill::kBM - 1) / TilePrefill::kBM);
  return ctx.wide_rows_gemm && p.M <= kGemmWideRowsMax && 3 * prefill_blocks < 2 * ctx.num_sms;
}

// Whether these rows run on the split-K kernel: every call of up to kGemmSplitKRowsMax rows; in
// the verify range, row slices of split-K blocks when the weight is narrow (up to two waves of
// column blocks, split along K when that fills the GPU better) or K is one round and the weight
// not much wider (each block walks several column blocks with x staged once); they beat the
// tile kernel's thin blocks. Measured on an H200 at 69 rows: Qwen2.5-0.5B's gate_up (1520 slice
// tiles) 28 -> 23 us, but an LM head (7680 and more) 59 -> 90 us: those stay on the tiles.
// A wide weight with K in one round goes to the tiles since they were widened (Qwen2.5-0.5B's
// gate_up at 69 rows: slices 21 us, the 80 x 64 tile 16 us).
bool SplitKRuns(const LaunchContext& ctx, const GemmParams& p) {
  if (p.M <= kGemmSplitKRowsMax) return true;
  if (!VerifyRules(ctx, p)) return false;
  const int slice_tiles = SplitKColumnBlocks(p.N) * SplitKSlices(p.M);
  return slice_tiles <= 2 * ctx.num_sms ||
         (p.N < kGemmWideColumns && SplitK::Rounds(p.K) == 1 && slice_tiles <= 16 * ctx.num_sms);
}

// The kernel by row count (which one runs never changes a bit, see gemm.cuh).
template <GemmEpilogue EP>
cudaError_t LaunchEpilogue(const LaunchContext& ctx, const GemmParams& p) {
  if (SplitKRuns(ctx, p)) return LaunchSplitK<EP>(ctx, p);
  const bool wide = p.N >= kGemmWideColumns;
  if (VerifyRules(ctx, p) && !wide) {
    if (p.M <= 80 && NarrowTileFits(ctx.max_smem_per_block)) return LaunchTile<TileNarrow, EP>(ctx, p);
    return LaunchTile<Tile32x128, EP>(ctx, p);
  }
  if (p.M <= 32) return LaunchTile<Tile32x128, EP>(ctx, p);
  if (p.M <= 80) {
    if (p.N >= 128 * ctx.num_sms && p.K >= 4096) return LaunchTile<TileWide80Deep, EP>(ctx, p);
    return LaunchTile<TileWide80, EP>(ctx, p);
  }
  if (p.M <= 128) return LaunchTile<TileWide128, EP>(ctx, p);
  return LaunchTile<TilePrefill, EP>(ctx, p);
}

template <GemmEpilogue EP>
cudaError_t PrepareNormEpilogue(size_t max_smem) {
  for (cudaError_t e :
       {PrepareKernel(gemm_bf16_bulk_kernel<EP, true>, max_smem - kGemmBulkStaticSmemMax),
        PrepareKernel(gemm_bf16_splitk_kernel<SplitK, EP, SplitKWalk::kOneColumn, true>, SplitK::kSmemMax),
        PrepareKernel(gemm_bf16_splitk_kernel<SplitK, EP, SplitKWalk::kColumns, true>, SplitK::kSmemMax),
        PrepareKernel(gemm_bf16_splitk_kernel<SplitK, EP, SplitKWalk::kSplitK, true>, SplitK::kSmemMax)}) {
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

template <GemmEpilogue EP>
cudaError_t PrepareEpilogue(size_t max_smem) {
  for (cudaError_t e : {PrepareKernel(gemm_bf16_bulk_kernel<EP>, max_smem - kGemmBulkStaticSmemMax),
                        PrepareKernel(gemm_bf16_splitk_kernel<SplitK, EP, SplitKWalk::kOneColumn>, SplitK::kSmemMax),
                        PrepareKernel(gemm_bf16_splitk_kernel<SplitK, EP, SplitKWalk::kColumns>, SplitK::kSmemMax),
                        PrepareKernel(gemm_bf16_splitk_kernel<SplitK, EP, SplitKWalk::kSplitK>, SplitK::kSmemMax),
                        NarrowTileFits(max_smem)
                            ? PrepareKernel(gemm_bf16_kernel<TileNarrow, EP>, TileNarrow::kSmemBytes)
                            : cudaSuccess,
                        PrepareKernel(gemm_bf16_kernel<Tile32x128, EP>, Tile32x128::kSmemBytes),
                        PrepareKernel(gemm_bf16_kernel<TileWide80, EP>, TileWide80::kSmemBytes),
                        PrepareKernel(gemm_bf16_kernel<TileWide80Deep, EP>, TileWide80Deep::kSmemBytes),
                        PrepareKernel(gemm_bf16_kernel<TileWide128, EP>, TileWide128::kSmemBytes),
                        PrepareKernel(gemm_bf16_kernel<TilePrefill, EP>, TilePrefill::kSmemBytes)}) {
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

}  // namespace

size_t GemmSharedMemoryRequired() {
  return std::max({SplitK::kSmemMax, Tile32x128::kSmemBytes, TileWide80::kSmemBytes, TileWide80Deep::kSmemBytes,
                   TileWide128::kSmemBytes, TilePrefill::kSmemBytes});
}

cudaError_t PrepareGemmKernels(size_t max_smem) {
  for (cudaError_t e : {PrepareEpilogue<GemmEpilogue::kStoreBf16>(max_smem), PrepareEpilogue<GemmEpilogue::kStoreF32>(max_smem),
                        PrepareEpilogue<GemmEpilogue::kAccumulateF32>(max_smem),
                        PrepareEpilogue<GemmEpilogue::kSiluMulBf16>(max_smem), PrepareEpilogue<GemmEpilogue::kArgmax>(max_smem),
                        PrepareNormEpilogue<GemmEpilogue::kStoreBf16>(max_smem),
                        PrepareNormEpilogue<GemmEpilogue::kSiluMulBf16>(max_smem), PrepareNormEpilogue<GemmEpilogue::kRopeKvBf16>(max_smem),
                        PrepareNormEpilogue<GemmEpilogue::kArgmax>(max_smem),
                        PrepareKernel(argmax_keys_to_ids_kernel)}) {
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

bool GemmCanImplement(const GemmParams& p, GemmEpilogue ep) {
  if (p.K <= 0 || p.K % 8 != 0 || p.N <= 0 || p.M < 0) return false;
  if (reinterpret_cast<uintptr_t>(p.w) % 16 != 0) return false;
  if (ep == GemmEpilogue::kRopeKvBf16) {  // whole heads, rotation pairs 16 columns apart at least
    if (p.norm_x == nullptr || p.head_dim <= 0 || p.head_dim % 32 != 0 || p.num_q_heads <= 0 || p.num_kv_heads < 0) {
      return false;
    }
    // No K/V heads: a query projection, rotated and stored, nothing cached.
    if (p.num_kv_heads > 0 && (p.kv_slots == nullptr || p.k_cache == nullptr || p.v_cache == nullptr)) return false;
    if (p.N != (p.num_q_heads + 2 * p.num_kv_heads) * p.head_dim) return false;
  }
  if (p.norm_x != nullptr) {
    if (p.M > kGemmNormRowsMax ||
        (ep != GemmEpilogue::kStoreBf16 && ep != GemmEpilogue::kSiluMulBf16 && ep != GemmEpilogue::kRopeKvBf16 &&
         ep != GemmEpilogue::kArgmax)) {
      return false;
    }
    if (reinterpret_cast<uintptr_t>(p.norm_x) % 16 != 0 || reinterpret_cast<uintptr_t>(p.norm_w) % 16 != 0) return false;
    if (p.M > 1 && p.x_stride % 4 != 0) return false;
  } else {
    if (p.norm_rows != nullptr) return false;  // a row list only says which rows to normalise
    if (reinterpret_cast<uintptr_t>(p.x) % 16 != 0) return false;
    if (p.M > 1 && p.x_stride % 8 != 0) return false;
  }
  if (ep == GemmEpilogue::kSiluMulBf16 && p.N % 16 != 0) return false;
  return true;
}

// Each column block of a slice normalises its 16 rows itself, reading them whole: past this K that
// costs more than the separate norm (H200, Qwen2.5-1.5B's qkv, K = 1536, at 33 rows 10.7 -> 12.2 us).
constexpr int kGemmNormSlicesKMax = 1024;

bool GemmNormFused(const LaunchContext& ctx, const GemmParams& p) {
  if (p.M <= kGemmSplitKRowsMax) return true;
  return ctx.norm_row_slices && p.M <= kGemmNormRowsMax && p.K <= kGemmNormSlicesKMax && SplitKRuns(ctx, p);
}

cudaError_t LaunchGemm(const LaunchContext& ctx, GemmEpilogue ep, const GemmParams& p) {
  if (p.M == 0) return cudaSuccess;
  if (!GemmCanImplement(p, ep)) return cudaErrorInvalidValue;
  if (p.norm_x != nullptr) {  // the split-K kernel, the one that normalises its rows (GemmNormFused)
    switch (ep) {
      case GemmEpilogue::kStoreBf16: return LaunchSplitK<GemmEpilogue::kStoreBf16, true>(ctx, p);
      case GemmEpilogue::kSiluMulBf16: return LaunchSplitK<GemmEpilogue::kSiluMulBf16, true>(ctx, p);
      case GemmEpilogue::kRopeKvBf16: return LaunchSplitK<GemmEpilogue::kRopeKvBf16, true>(ctx, p);
      case GemmEpilogue::kArgmax: return LaunchSplitK<GemmEpilogue::kArgmax, true>(ctx, p);
      default: return cudaErrorInvalidValue;
    }
  }
  switch (ep) {
    case GemmEpilogue::kStoreBf16: return LaunchEpilogue<GemmEpilogue::kStoreBf16>(ctx, p);
    case GemmEpilogue::kStoreF32: return LaunchEpilogue<GemmEpilogue::kStoreF32>(ctx, p);
    case GemmEpilogue::kAccumulateF32: return LaunchEpilogue<GemmEpilogue::kAccumulateF32>(ctx, p);
    case GemmEpilogue::kSiluMulBf16: return LaunchEpilogue<GemmEpilogue::kSiluMulBf16>(ctx, p);
    case GemmEpilogue::kArgmax: return LaunchEpilogue<GemmEpilogue::kArgmax>(ctx, p);
    case GemmEpilogue::kRopeKvBf16: return cudaErrorInvalidValue;  // with an input norm only (above)
  }
  return cudaErrorInvalidValue;
}

// ids from the packed keys, and the keys back to zero for the next launch.
__global__ void argmax_keys_to_ids_kernel(unsigned long long* keys, int32_t* ids, int rows) {
  pdl_wait();
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r < rows) {
    const unsigned long long k = keys[r];
    ids[r] = k == 0 ? 0 : static_cast<int32_t>(0xffffffffu - static_cast<uint32_t>(k));
    keys[r] = 0;
  }
  pdl_launch_dependents();
}

cudaError_t LaunchGemmArgmax(const LaunchContext& ctx, const GemmParams& p, unsigned long long* keys, int32_t* ids) {
  if (p.M == 0) return cudaSuccess;
  cudaError_t e = cudaSuccess;
  // The backend's keys are zero already (the ids pass of the launch before left them so); a
  // caller's scratch is zeroed here.
  if (ctx.argmax_keys != nullptr && p.M <= ctx.argmax_key_count) {
    keys = ctx.argmax_keys;
  } else {
    e = cudaMemsetAsync(keys, 0, sizeof(unsigned long long) * p.M, ctx.stream);
    if (e != cudaSuccess) return e;
  }
  GemmParams q = p;
  q.argmax = keys;
  e = LaunchGemm(ctx, GemmEpilogue::kArgmax, q);
  if (e != cudaSuccess) {
    // Keys that a launch may have touched go back to zero (the next launch relies on it).
    cudaMemsetAsync(keys, 0, sizeof(unsigned long long) * p.M, ctx.stream);
    return e;
  }
  return Launch(ctx, argmax_keys_to_ids_kernel, dim3((p.M + 127) / 128), dim3(128), 0, keys, ids, p.M);
}

}  // namespace longspec::cuda
