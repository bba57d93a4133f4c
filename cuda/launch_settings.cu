// LONGSPEC_PDL=0, LONGSPEC_DECODE_WARPS=0 and LONGSPEC_FINISH_GROUP_WARPS=0 switch programmatic
// dependent launch, the four-warp decode attention and the finishing pass's group-per-warp fold
// off (for measurements and debugging; the same bits); LONGSPEC_FINISH_WIDE=0 gives decode-sized
// calls the finishing kernel back (the same bits); LONGSPEC_WIDE_ROWS_SPREAD=0 gives attention over
// more than 128 rows that would leave the GPU short of a wave the walkers back, one block per query
// tile and KV head (the same bits); LONGSPEC_WIDE_ROWS_GEMM=0 gives GEMMs of 129-320 rows the
// prefill tile back, LONGSPEC_FUSE_NORM_SLICES=0 keeps the fused input RMSNorm to 16 rows,
// LONGSPEC_TREE_BLOCKS_PARALLEL=0 gives the draft's window attention back to the finishing kernel
// and LONGSPEC_RANK_TREE_SELECT=0 the tree growth's first stage to its sort (the same bits);
// LONGSPEC_EARLY_PREFIX_KEYS=0 makes the decode attention wait before loading keys and
// LONGSPEC_GEMM_EARLY_TRIGGER=0 (or LONGSPEC_GEMM_EARLY_TRIGGER_MAX_ROWS=N) the GEMMs let the next
// kernel launch only at their end (timing only); LONGSPEC_GEMM_BULK, LONGSPEC_GEMM_BULK_NARROW and
// LONGSPEC_GEMM_BULK_ROWS_MAX choose the bulk-stream GEMM's shapes (launch.cuh; the same bits).
#include "launch_settings.h"

#include <algorithm>

#include "util/env.h"

namespace longspec::cuda {

Status ReadLaunchSettings(const cudaDeviceProp& prop, LaunchContext* ctx) {
  ctx->pdl = EnvFlag("LONGSPEC_PDL", prop.major >= 9);
  ctx->decode_warps = EnvFlag("LONGSPEC_DECODE_WARPS", true);
  ctx->finish_group_warps = EnvFlag("LONGSPEC_FINISH_GROUP_WARPS", true);
  ctx->finish_wide = EnvFlag("LONGSPEC_FINISH_WIDE", true);
  ctx->early_prefix_keys = EnvFlag("LONGSPEC_EARLY_PREFIX_KEYS", true);
  LONGSPEC_ASSIGN_OR_RETURN(const double early_trigger_rows,
                            EnvNumberSetting("LONGSPEC_GEMM_EARLY_TRIGGER_MAX_ROWS", double(ctx->gemm_early_trigger_max_rows),
                                             [](double x) { return x >= 0.0; }, "a number of rows"));
  ctx->gemm_early_trigger_max_rows =
      EnvFlag("LONGSPEC_GEMM_EARLY_TRIGGER", true) ? int(std::min(early_trigger_rows, double(1 << 30))) : 0;
  ctx->tree_blocks_parallel = EnvFlag("LONGSPEC_TREE_BLOCKS_PARALLEL", true);
  ctx->rank_tree_select = EnvFlag("LONGSPEC_RANK_TREE_SELECT", true);
  ctx->wide_rows_spread = EnvFlag("LONGSPEC_WIDE_ROWS_SPREAD", true);
  ctx->wide_rows_gemm = EnvFlag("LONGSPEC_WIDE_ROWS_GEMM", true);
  ctx->norm_row_slices = EnvFlag("LONGSPEC_FUSE_NORM_SLICES", true);
  ctx->gemm_bulk = prop.major >= 9 && EnvFlag("LONGSPEC_GEMM_BULK", true);
  LONGSPEC_ASSIGN_OR_RETURN(
      const double bulk_narrow,
      EnvNumberSetting("LONGSPEC_GEMM_BULK_NARROW", double(ctx->gemm_bulk_narrow),
                       [](double x) { return x == 0.0 || x == 1.0 || x == 2.0; },
                       "0 (off), 1 (where faster) or 2 (always)"));
  ctx->gemm_bulk_narrow = int(bulk_narrow);
  // (the launcher caps it at the kernel's kGemmBulkRowsMax)
  LONGSPEC_ASSIGN_OR_RETURN(const double bulk_rows_max,
                            EnvNumberSetting("LONGSPEC_GEMM_BULK_ROWS_MAX", double(ctx->gemm_bulk_rows_max),
                                             [](double x) { return x >= 0.0; }, "a number of rows"));
  ctx->gemm_bulk_rows_max = int(std::min(bulk_rows_max, double(1 << 30)));
  return Status::OK();
}

}  // namespace longspec::cuda
