// Kernel launch on the backend's stream, with programmatic dependent launch (PDL) when enabled:
// the next kernel's blocks may be scheduled while this one drains; every kernel calls pdl_wait()
// before it touches memory a previous kernel wrote, so the overlap never changes a result.
#pragma once

#include <cuda_runtime.h>

namespace longspec::cuda {

// The default row limit of the split-K GEMM's early trigger (LaunchContext::gemm_early_trigger_max_rows).
constexpr int kGemmEarlyTriggerMaxRows = 16;

// Which narrow weights take the bulk-stream kernel (LaunchContext::gemm_bulk_narrow).
enum GemmBulkNarrow : int { kGemmBulkNarrowOff = 0, kGemmBulkNarrowMeasured = 1, kGemmBulkNarrowAlways = 2 };

struct LaunchContext {
  cudaStream_t stream = nullptr;
  bool pdl = true;
  bool decode_warps = true;  // decode attention's prefix on four warps per block (attention_decode.cuh)
  bool finish_group_warps = true;  // the finishing pass folds split groups a warp each (attention_finish.cuh)
  // Calls of at most one block per SM of (row, head) pairs with split states finish on the wide
  // kernel (attention_finish_wide.cuh: the tree part and the state folds side by side, the same
  // bits). LONGSPEC_FINISH_WIDE=0 turns it off.
  bool finish_wide = true;
  // The decode prefix kernel loads K/V before its wait where the caller says every key precedes
  // the step (attention_decode.cuh). LONGSPEC_EARLY_PREFIX_KEYS=0 turns it off.
  bool early_prefix_keys = true;
  // The split-K GEMM lets the next kernel launch before it waits itself, so that kernel's weights
  // stream during this one (gemm_splitk.cuh). Safe because no kernel reads, before its own wait,
  // anything a kernel still in flight may write: a GEMM reads its weights, bias and norm weights;
  // the decode attention the step's plan and keys that precede the step; the finishing kernel
  // (after a prefix kernel, never after a GEMM) q and the rows' K/V, which the prefix kernel's
  // blocks have waited for before letting it launch; every other kernel waits first. And a kernel
  // launches only once every block of the one before it is resident, so none is starved.
  // Only for products of at most one 16-row slice: on the H200 (2026-12-02, by-rows A/B) it made
  // plain steps 8-17% faster and Qwen's 9-row verification rounds 4-5% at 32k, but SmolLM2's
  // 19-row verification rounds 3-8% slower at 8k (the next kernel's early blocks share the SMs
  // with a GEMM of two row slices). LONGSPEC_GEMM_EARLY_TRIGGER_MAX_ROWS=N sets the limit;
  // LONGSPEC_GEMM_EARLY_TRIGGER=0 makes it 0 (off: every product has a row).
  int gemm_early_trigger_max_rows = kGemmEarlyTriggerMaxRows;
  // GEMMs of up to 16 rows over weights with a 32-column block for every SM stream their weights
  // with bulk copies into a ring of shared memory, a producer warp per SM (gemm_bulk.cuh),
  // instead of the split-K kernel's loads into registers; the same bits. Needs sm_90.
  // LONGSPEC_GEMM_BULK=0 turns it off.
  bool gemm_bulk = true;
  // Weights with fewer column blocks than SMs (qkv, o, down) on the bulk-stream kernel, each column
  // block's K split over a cluster of blocks (gemm_bulk.cuh): kGemmBulkNarrowMeasured where the
  // H200 measured it faster (BulkRuns), kGemmBulkNarrowAlways for every such weight (tests and
  // timing), kGemmBulkNarrowOff never. LONGSPEC_GEMM_BULK_NARROW=0, 1 (default) or 2.
  int gemm_bulk_narrow = kGemmBulkNarrowMeasured;
  // The most rows the bulk-stream kernel takes (at most kGemmBulkRowsMax, 16; 8 keeps verification
  // rows of 9-16 on the split-K kernel: 16 rows over the 1.5B's gate_up 19.4 against 22.6 us, the
  // LM heads 4-16% faster, bench/results/gpu_gemm_bulk_narrow_2026-12-02.md).
  // LONGSPEC_GEMM_BULK_ROWS_MAX sets it.
  int gemm_bulk_rows_max = 16;
  // Attention over a band + tree alone (the draft's window) computes its blocks of keys side by
  // side (attention_tree.cuh), not one after the other in the finishing kernel.
  // LONGSPEC_TREE_BLOCKS_PARALLEL=0 turns it off.
  bool tree_blocks_parallel = true;
  // Tree growth's stage 1 orders a slice's candidates by rank instead of a bitonic sort
  // (speculation.cuh): 8.2 -> 5.6 us a level of 6 rows on the H200
  // (bench/results/gpu_rank_select_2026-12-01.md). LONGSPEC_RANK_TREE_SELECT=0 turns it off.
  bool rank_tree_select = true;
  // Attention over more than kAttnSplitRowsMax rows that would not fill the GPU walking whole
  // caches per block spreads the keys over blocks as fewer rows do (attention.cu): on the H200
  // a 145-row tree of SmolLM2 at 8k takes 55 us a layer where the walkers took 152
  // (bench/results/gpu_wide_rows_spread_2026-12-01.md). LONGSPEC_WIDE_ROWS_SPREAD=0 turns it off.
  bool wide_rows_spread = true;
  // GEMMs of 129..320 rows (trees of more than 128 nodes) take the verify range's
  // kernels (row slices of split-K blocks, 32-row tiles) instead of the 128 x 128 prefill tile,
  // of which such a GEMM fills 10-48 blocks (gemm.cu). LONGSPEC_WIDE_ROWS_GEMM=0 turns it off.
  bool wide_rows_gemm = true;
  // GEMMs with an input RMSNorm (and the qkv GEMM's RoPE + KV write) of 17..128 rows in the
  // split-K kernel's row slices where those are the launcher's choice anyway, instead of an
  // RmsNorm launch (and a RopeKvWrite launch) beside the GEMM (gemm.cu, GemmNormFused).
  // LONGSPEC_FUSE_NORM_SLICES=0 turns it off.
  bool norm_row_slices = true;
  int num_sms = 132;
  // The device's shared memory per block (opt-in; an H100 / H200 offers 227 KB, an A100 163).
  // A kernel that needs more is neither loaded nor launched: its launcher takes a smaller kernel
  // of the same reduction order (the same bits).
  size_t max_smem_per_block = 227 * 1024;
  // Split-K over blocks (gemm.cu): each chunk's partial sums, and per output tile a counter of
  // the blocks that have written theirs (back to zero after every launch). Owned by the backend.
  float* splitk_partials = nullptr;
  size_t splitk_partial_floats = 0;
  unsigned* splitk_counters = nullptr;
  int splitk_counter_count = 0;
  // The argmax product's packed keys (gemm.cu, LaunchGemmArgmax), zero between launches: the
  // pass that turns them into ids zeroes them. Owned by the backend; null: the caller's scratch,
  // zeroed before each launch.
  unsigned long long* argmax_keys = nullptr;
  int argmax_key_count = 0;
};

// Loads a kernel and sets its dynamic shared memory limit. Called for every kernel when the
// backend is created, so that no module loading or attribute call happens while a graph is being
// captured.
template <typename... KArgs>
cudaError_t PrepareKernel(void (*kernel)(KArgs...), size_t dynamic_smem = 0) {
  if (dynamic_smem > 48 * 1024) {
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(dynamic_smem));
  }
  cudaFuncAttributes attr;
  return cudaFuncGetAttributes(&attr, kernel);
}

// With cluster_x > 0 the grid runs in clusters of cluster_x consecutive blocks along x (sm_90).
template <typename... KArgs, typename... Args>
cudaError_t LaunchClusters(const LaunchContext& ctx, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                           int cluster_x, Args&&... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return cudaSuccess;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = ctx.stream;
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = ctx.pdl ? 1 : 0;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  if (cluster_x > 0) {
    attr[1].id = cudaLaunchAttributeClusterDimension;
    attr[1].val.clusterDim.x = unsigned(cluster_x);
    attr[1].val.clusterDim.y = 1;
    attr[1].val.clusterDim.z = 1;
    cfg.numAttrs = 2;
  }
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

template <typename... KArgs, typename... Args>
cudaError_t Launch(const LaunchContext& ctx, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                   Args&&... args) {
  return LaunchClusters(ctx, kernel, grid, block, smem, 0, std::forward<Args>(args)...);
}

}  // namespace longspec::cuda
