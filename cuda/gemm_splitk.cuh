// The split-K kernel of the GEMM (gemm_common.cuh has the reduction order it keeps and the packed
// weight layout it reads).
//
// Split-K kernel (M <= 16, decode and small trees): weights are bandwidth, not FLOPs, and one n8
// column tile over all of K is too little work to spread a layer over 132 SMs. A block holds NT
// n8 tiles; CW warps per tile take its chunks round robin, loading B fragments straight from
// global memory into registers (the packed layout is the fragment layout; the next chunk's loads
// are in flight while the current one multiplies). The block walks K in rounds of CW consecutive
// chunks: round r's x columns are staged in shared memory (double buffered: round r + 1's copy is
// in flight while round r multiplies; ldmatrix gives the A fragments, rows past M read zeros),
// each warp leaves its chunk's partials in shared memory, and one thread per output adds them in
// chunk order to a running total in a register. Shared memory depends on M, not on K.
//
// Input RMSNorm (split-K kernel, NORM): x may instead be computed from fp32 rows as
// RmsNorm(h) * w while it is staged, with the bits of the standalone RMSNorm (rmsnorm.cuh), so a
// decode step saves the norm's launch and its pass over memory and a row's bits stay the same.
#pragma once

#include "gemm_common.cuh"
#include "rmsnorm.cuh"

namespace longspec::cuda {

// The 32-column kernels' column block (split-K here, gemm_bulk.cuh): four n8 tiles, 32 outputs a row.
constexpr int kGemmColumnTiles = kGemmGroupTiles, kGemmColumnCols = kGemmTileRows * kGemmColumnTiles;

// Split-K kernel for M <= kGemmSplitKRowsMax: NT n8 tiles per block (whole 32-column groups), CW
// warps per tile; warp (tile, cw) computes chunk r * CW + cw of round r. 32 columns times 16 rows
// is one thread per output for the 512 threads of CW = 4 (the argmax epilogue folds a row in a
// warp, SwiGLU finds a gate column's up column 8 lanes on).
constexpr int kGemmSplitKRowsMax = 16;

template <int CW_>
struct GemmSplitK {
  static constexpr int kTiles = kGemmColumnTiles, kChunkWarps = CW_;
  static constexpr int kCols = kGemmColumnCols;  // 32
  static constexpr int kThreads = 32 * kTiles * kChunkWarps;
  static_assert(kCols == 32 && kThreads == kCols * kGemmSplitKRowsMax, "one thread per output, a warp per row");
  static constexpr int kRoundK = kChunkWarps * kGemmChunkK;  // x columns of a round
  // Partial rows padded by 8 floats: the 16 lanes of a half-warp's float2 stores (rows g..g+3)
  // fall in 32 different banks.
  static constexpr int kPartialLd = kCols + 8;
  // Rows past M point their ldmatrix addresses into a zero block as long as a chunk.
  static constexpr int kZeroBytes = kGemmChunkK * int(sizeof(__nv_bfloat16));
  static constexpr int Rounds(int k) { return (GemmKChunks(k) + kChunkWarps - 1) / kChunkWarps; }
  // Staged x columns per round: a round, or all of K padded to 64 when K fits in one round.
  static constexpr int XCols(int k) { return GemmKTiles(k) * 64 < kRoundK ? GemmKTiles(k) * 64 : kRoundK; }
  // Row stride +8 elements: consecutive rows start 16 bytes apart in the banks (ldmatrix reads
  // eight rows of 16 bytes without a conflict).
  static constexpr int XLd(int k) { return XCols(k) + 8; }
  static constexpr int XBuffers(int k) { return Rounds(k) > 1 ? 2 : 1; }
  static constexpr size_t PartialBytes(int m) { return size_t(kChunkWarps) * m * kPartialLd * sizeof(float); }
  // Partials [CW][M][kPartialLd] fp32, then x [buffers][M][XLd] bf16, then the zero block.
  static constexpr size_t SmemBytes(int m, int k) {
    return PartialBytes(m) + size_t(XBuffers(k)) * m * XLd(k) * sizeof(__nv_bfloat16) + kZeroBytes;
  }
  static constexpr size_t kSmemMax = SmemBytes(kGemmSplitKRowsMax, 2 * kRoundK);
};

// Output row `r0` of a call: where the epilogue writes row r0 (the argmax keys, or the output
// row in the epilogue's element type).
template <GemmEpilogue EP>
__device__ __forceinline__ void gemm_offset_rows(GemmParams& p, int r0) {
  if (p.norm_rows != nullptr) {
    p.norm_rows += r0;
  } else if (p.norm_x != nullptr) {
    p.norm_x += int64_t(r0) * p.x_stride;
  } else {
    p.x += int64_t(r0) * p.x_stride;
  }
  if constexpr (EP == GemmEpilogue::kArgmax) {
    p.argmax += r0;
  } else if constexpr (EP == GemmEpilogue::kStoreBf16 || EP == GemmEpilogue::kSiluMulBf16 ||
                       EP == GemmEpilogue::kRopeKvBf16) {
    if constexpr (EP == GemmEpilogue::kRopeKvBf16) {
      p.rope_cos += int64_t(r0) * (p.head_dim / 2);
      p.rope_sin += int64_t(r0) * (p.head_dim / 2);
      if (p.kv_slots != nullptr) p.kv_slots += r0;
    }
    p.out = static_cast<__nv_bfloat16*>(p.out) + int64_t(r0) * p.out_stride;
  } else {
    p.out = static_cast<float*>(p.out) + int64_t(r0) * p.out_stride;
    if (p.out_copy != nullptr) p.out_copy += int64_t(r0) * p.out_copy_stride;
  }
}

// NORM: the fp32 row that call row r normalises.
__device__ __forceinline__ const float* gemm_norm_row(const GemmParams& p, int r) {
  return p.norm_x + int64_t(p.norm_rows != nullptr ? p.norm_rows[r] : r) * p.x_stride;
}

// The packed n8 tile of column block col's tile j: the block's four consecutive tiles, or for
// kRopeKvBf16 tiles 2q, 2q + 1 of a head's first half and the matching two of its second half
// (q: the block's place in its head), so each rotation pair meets in one warp.
template <GemmEpilogue EP>
__device__ __forceinline__ int gemm_column_tile(const GemmParams& p, int col, int j) {
  if constexpr (EP == GemmEpilogue::kRopeKvBf16) {
    const int head_tiles = p.head_dim / kGemmTileRows, per_head = p.head_dim / kGemmColumnCols;
    return (col / per_head) * head_tiles + 2 * (col % per_head) + (j & 1) + (j >> 1) * (head_tiles / 2);
  }
  return col * kGemmColumnTiles + j;
}

// kRopeKvBf16: what the epilogue of column block col_block reads besides the product for a row's
// lane cl (its column's bias, the rotation's cos and sin, the row's cache slot), so a kernel that
// knows its column block can read them once the previous kernel is done instead of after its last
// round, where each is one more memory latency before the stores.
struct RopeOperands {
  float bias, cos, sin;
  int32_t slot;
};

template <GemmEpilogue EP>
__device__ __forceinline__ RopeOperands gemm_rope_operands(const GemmParams& p, int col_block, int row, int cl) {
  RopeOperands o{0.0f, 1.0f, 0.0f, 0};
  const int tcol = gemm_column_tile<EP>(p, col_block, cl / kGemmTileRows) * kGemmTileRows + cl % kGemmTileRows;
  if (p.bias) o.bias = ld_global_now(p.bias + tcol);
  if (row < p.M) {
    const int hd = p.head_dim, half = hd / 2, head = tcol / hd, d = tcol % hd;
    if (head < p.num_q_heads + p.num_kv_heads) {
      o.cos = ld_global_now(p.rope_cos + int64_t(row) * half + d % half);
      o.sin = ld_global_now(p.rope_sin + int64_t(row) * half + d % half);
    }
    if (head >= p.num_q_heads) o.slot = ld_global_now(p.kv_slots + row);
  }
  return o;
}

// The epilogue of column block col_block for one row: lane cl holds `total`, the output of column
// cl of the block's 32 (its chunk partials added in chunk order). Every lane of the warp takes
// part (the argmax and SwiGLU epilogues shuffle); rows past M store nothing. `rope`: kRopeKvBf16's
// operands read earlier by the caller (else read here).
template <GemmEpilogue EP>
__device__ __forceinline__ void gemm_column_epilogue(const GemmParams& p, int col_block, int row, int cl, float total,
                                                     const RopeOperands* rope = nullptr) {
  const int lane = cl;
  const int col = col_block * kGemmColumnCols + cl;
  if constexpr (EP == GemmEpilogue::kArgmax) {
    unsigned long long best = 0;
    if (row < p.M && col < p.N) {
      const float v = total + (p.bias ? p.bias[col] : 0.0f);
      if (v == v) best = argmax_key(v, col);
    }
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const unsigned long long other = __shfl_xor_sync(0xffffffffu, best, o);
      best = other > best ? other : best;
    }
    if (lane == 0 && best != 0 && row < p.M) atomicMax(p.argmax + row, best);
  } else if constexpr (EP == GemmEpilogue::kSiluMulBf16) {
    // Columns pair as 8 gate then the 8 matching up columns (N % 16 == 0): the up total is 8
    // lanes on.
    const float up = __shfl_down_sync(0xffffffffu, total, 8);
    if (row < p.M && cl % 16 < 8 && col < p.N) {
      float gv = total, uv = up;
      if (p.bias) {
        gv += p.bias[col];
        uv += p.bias[col + 8];
      }
      const float silu = gv / (1.0f + __expf(-gv));
      const int n_gate = col - cl % 16;
      static_cast<__nv_bfloat16*>(p.out)[int64_t(row) * p.out_stride + n_gate / 2 + cl % 16] =
          __float2bfloat16_rn(silu * uv);
    }
  } else if constexpr (EP == GemmEpilogue::kRopeKvBf16) {
    // Lane cl and lane cl ^ 16 hold a rotation pair (dimension i of the first half, i of the
    // second); every column exists (N is whole heads of a multiple of 32).
    const RopeOperands o = rope != nullptr ? *rope : gemm_rope_operands<EP>(p, col_block, row, cl);
    const int tcol = gemm_column_tile<EP>(p, col_block, cl / kGemmTileRows) * kGemmTileRows + cl % kGemmTileRows;
    const float x = __bfloat162float(__float2bfloat16_rn(p.bias ? total + o.bias : total));
    const float other = __shfl_xor_sync(0xffffffffu, x, 16);
    if (row < p.M) {
      const int hd = p.head_dim, half = hd / 2, head = tcol / hd, d = tcol % hd;
      float y = x;
      if (head < p.num_q_heads + p.num_kv_heads) {
        const float c = o.cos, sn = o.sin;
        y = d < half ? __fsub_rn(__fmul_rn(x, c), __fmul_rn(other, sn)) : __fadd_rn(__fmul_rn(x, c), __fmul_rn(other, sn));
      }
      const __nv_bfloat16 yb = __float2bfloat16_rn(y);
      static_cast<__nv_bfloat16*>(p.out)[int64_t(row) * p.out_stride + tcol] = yb;
      if (head >= p.num_q_heads) {
        const bool is_v = head >= p.num_q_heads + p.num_kv_heads;
        const int kvh = head - p.num_q_heads - (is_v ? p.num_kv_heads : 0);
        __nv_bfloat16* cache = is_v ? p.v_cache : p.k_cache;
        cache[(int64_t(kvh) * p.kv_capacity + o.slot) * hd + d] = yb;
      }
    }
  } else {
    if (row < p.M && col < p.N) gemm_store<EP>(p, row, col, total + (p.bias ? p.bias[col] : 0.0f));
  }
}

// Grid: x = (column group, row slice) with the slice fastest, z = K splits. Slice i computes rows
// [16 i, 16 i + 16) exactly as a call of those rows alone would (a row's bits never depend on
// the others), so a verification of up to 128 rows over a narrow weight fills the GPU with slices
// instead of one thin tile column; the slices of a column group run side by side and read its
// weights together (one DRAM read, the others from L2).
// A column group is `columns_per_block` consecutive column blocks walked one after another: with
// K in one round, x is staged once and the next column's W fragments load while the current one
// multiplies, so a short, wide weight (an LM head over 896 columns of K) streams through a wave
// of blocks instead of thousands of blocks that each read 57 KB.
// With kSplitK, each z takes a contiguous run of rounds of one column block and stores every
// chunk's partials in k_partials; the last block of the tile to arrive (a counter per tile) adds
// them in chunk order: the same additions as one block walking all of K.
enum class SplitKWalk : int {
  kOneColumn,  // one column block, all of K
  kColumns,    // K is one round; columns_per_block column blocks one after another
  kSplitK,     // one column block, a run of rounds (gridDim.z runs)
};

template <class S, GemmEpilogue EP, SplitKWalk WALK, bool NORM = false>
__global__ void __launch_bounds__(S::kThreads, 1) gemm_bf16_splitk_kernel(const GemmParams p_call) {
  GemmParams p = p_call;
  const int slice = blockIdx.x % p.row_slices, group = blockIdx.x / p.row_slices;
  if (slice > 0) {
    gemm_offset_rows<EP>(p, slice * kGemmSplitKRowsMax);
    p.M -= slice * kGemmSplitKRowsMax;
  }
  if (p.M > kGemmSplitKRowsMax) p.M = kGemmSplitKRowsMax;
  extern __shared__ __align__(16) float partial[];
  constexpr int CW = S::kChunkWarps;
  constexpr int kStageElems = kGemmGroupTiles * 2 * kGemmBlockElems;  // a tile's next 64-k stage
  constexpr int kTileOutputs = kGemmSplitKRowsMax * S::kCols;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int jt = warp % S::kTiles, cw = warp / S::kTiles;
  const int k_tiles = GemmKTiles(p.K), chunks = GemmKChunks(p.K), rounds = S::Rounds(p.K);
  const int columns = GemmPaddedTiles(p.N) / S::kTiles;
  const int col_begin = group * p.columns_per_block, col_end = min(columns, col_begin + p.columns_per_block);
  int r_begin = 0, r_end = rounds;
  // kSplitK: this tile's chunk partials in the workspace, and this thread's output among them.
  float* tile_partials = nullptr;
  if constexpr (WALK == SplitKWalk::kSplitK) {
    const int per = (rounds + gridDim.z - 1) / gridDim.z;
    r_begin = blockIdx.z * per;
    r_end = min(rounds, r_begin + per);
    tile_partials = p.k_partials + int64_t(blockIdx.x) * chunks * kTileOutputs + warp * S::kCols + lane;
  }
  // Items: rounds of one column block, or (kColumns) column blocks of one round.
  const int n_items = WALK == SplitKWalk::kColumns ? col_end - col_begin : r_end - r_begin;
  const int x_cols = S::XCols(p.K), x_ld = x_cols + 8, x_elems = p.M * x_ld;  // x_elems: one buffer
  __nv_bfloat16* x_s =
      reinterpret_cast<__nv_bfloat16*>(reinterpret_cast<unsigned char*>(partial) + S::PartialBytes(p.M));
  __nv_bfloat16* zero = x_s + S::XBuffers(p.K) * x_elems;

  auto tile_of = [&](int col, int j) { return gemm_column_tile<EP>(p, col, j); };
  // A lane's B fragments for the four stages of chunk c of column block col (zero past K).
  auto load_chunk = [&](int col, int c, uint4 (&b)[kGemmChunkTiles][2]) {
    const __nv_bfloat16* w_lane = p.w + GemmTileStageOffset(tile_of(col, jt), 0, k_tiles) + lane * 8;
#pragma unroll
    for (int i = 0; i < kGemmChunkTiles; ++i) {
      const int kt = c * kGemmChunkTiles + i;
      if (kt < k_tiles) {
        const __nv_bfloat16* src = w_lane + int64_t(kt) * kStageElems;
        b[i][0] = ldg_stream_16(src);
        b[i][1] = ldg_stream_16(src + kGemmBlockElems);
      } else {
        b[i][0] = b[i][1] = make_uint4(0, 0, 0, 0);
      }
    }
  };

  // Round r's x columns [r * kRoundK, + x_cols) of rows 0..M-1 into buffer r % 2, zero from K on.
  // Thread tid copies 16 bytes at column xc of rows xr0, xr0 + kXRowStep, ...
  constexpr int kXRowPieces = S::kRoundK / 8;
  constexpr int kXRowStep = S::kThreads / kXRowPieces;
  constexpr int kXPer = kGemmSplitKRowsMax / kXRowStep;
  static_assert(S::kThreads % kXRowPieces == 0 && kGemmSplitKRowsMax % kXRowStep == 0, "x pieces per thread");
  const int xr0 = tid / kXRowPieces, xc = (tid % kXRowPieces) * 8;
  // NORM: each row's inverse RMS, computed once the previous kernel's rows are visible.
  __shared__ float row_inv[NORM ? kGemmSplitKRowsMax : 1];
  __shared__ const float* norm_row_s[NORM ? kGemmSplitKRowsMax : 1];  // and where each row is
  // NORM: this thread's 8 norm weights of a round (the same for every row it stages); the first
  // round's are read before the previous kernel is waited for (they never change).
  float4 norm_w[2];
  auto load_norm_w = [&](int r) {
    const int k = r * S::kRoundK + xc;
    if (NORM && xc < x_cols && k < p.K) {
      norm_w[0] = __ldg(reinterpret_cast<const float4*>(p.norm_w + k));
      norm_w[1] = __ldg(reinterpret_cast<const float4*>(p.norm_w + k) + 1);
    }
  };
  auto stage_x = [&](int r) {
    if (xc >= x_cols) return;
    const int k = r * S::kRoundK + xc;
    __nv_bfloat16* dst = x_s + (r & 1) * x_elems + xr0 * x_ld + xc;
    if (NORM && r != r_begin) load_norm_w(r);
#pragma unroll
    for (int i = 0; i < kXPer; ++i) {
      const int row = xr0 + i * kXRowStep;
      if (row >= p.M) continue;
      if constexpr (NORM) {  // RmsNorm(h) * w in bf16, 8 columns, zero from K on
        uint4 packed = make_uint4(0, 0, 0, 0);
        if (k < p.K) {
          const float4* h = reinterpret_cast<const float4*>(norm_row_s[row] + k);
          packed = rms_apply_pack8(h[0], h[1], norm_w[0], norm_w[1], row_inv[row]);
        }
        *reinterpret_cast<uint4*>(dst + i * kXRowStep * x_ld) = packed;
      } else {
        const bool ok = k < p.K;
        const __nv_bfloat16* src = p.x + int64_t(row) * p.x_stride + k;
        cp_async_16(dst + i * kXRowStep * x_ld, ok ? src : p.x, ok);
      }
    }
  };

  uint4 b_even[kGemmChunkTiles][2], b_odd[kGemmChunkTiles][2];  // W fragments of even / odd items
  // Weights never depend on the previous kernel: start streaming them before waiting for it.
  if (n_items > 0 && r_begin * CW + cw < chunks) load_chunk(col_begin, r_begin * CW + cw, b_even);
  if constexpr (NORM) load_norm_w(r_begin);
  // p.early_trigger: the next kernel may launch now and stream its own weights while this one
  // runs; whatever it reads before its wait was written before this kernel's predecessor ended
  // (launch.cuh, gemm_early_trigger_max_rows). Otherwise it launches as the last epilogue starts.
  if (p.early_trigger) pdl_launch_dependents();
  pdl_wait();
  if constexpr (NORM) {  // warp w: row w's inverse RMS
    if (warp < p.M) {
      const float* h = gemm_norm_row(p, warp);
      const float inv = rms_inverse(rms_sum_squares(h, p.K, lane), p.K, p.norm_eps);
      if (lane == 0) {
        row_inv[warp] = inv;
        norm_row_s[warp] = h;
      }
    }
    __syncthreads();
  }
  stage_x(r_begin);
  cp_async_commit();
  if (tid < S::kZeroBytes / 16) reinterpret_cast<uint4*>(zero)[tid] = make_uint4(0, 0, 0, 0);

  // ldmatrix.x4 row addresses: lane l gives row l % 16 at k + (l / 16) * 8, so the four matrices
  // are the A fragment's a0 (rows 0-7, k 0-7), a1 (rows 8-15), a2 (rows 0-7, k 8-15), a3.
  const int a_row = lane & 15;
  const int a_off = a_row < p.M ? a_row * x_ld + (lane >> 4) * 8 + cw * kGemmChunkK : -1;
  const __nv_bfloat16* a_zero = zero + (lane >> 4) * 8;
  const int g = lane >> 2, t = lane & 3;
  // The output this thread adds up: row `warp`, column `lane` of the block's 32.
  const int row = warp, cl = lane;
  float total = 0.0f;

  // kRopeKvBf16 over one column block: the epilogue's operands on their way while the rounds run.
  constexpr bool kEarlyRope = EP == GemmEpilogue::kRopeKvBf16 && WALK != SplitKWalk::kColumns;
  RopeOperands rope{};
  if constexpr (kEarlyRope) rope = gemm_rope_operands<EP>(p, col_begin, row, cl);
  auto finish_column = [&](int col_block) {
    gemm_column_epilogue<EP>(p, col_block, row, cl, total, kEarlyRope ? &rope : nullptr);
  };

  // Item i: column block col_begin + i (kColumns) or round r_begin + i. Multiplies the W
  // fragments `cur` and loads the next item's into `nxt`.
  constexpr bool kColumnItems = WALK == SplitKWalk::kColumns;
  auto run_item = [&](int i, const uint4 (&cur)[kGemmChunkTiles][2], uint4 (&nxt)[kGemmChunkTiles][2]) {
    const int col = kColumnItems ? col_begin + i : col_begin, r = kColumnItems ? 0 : r_begin + i;
    const int c = r * CW + cw;
    const bool has_next = i + 1 < n_items;
    const int next_col = kColumnItems ? col + 1 : col, next_r = kColumnItems ? 0 : r + 1;
    if (has_next && next_r * CW + cw < chunks) load_chunk(next_col, next_r * CW + cw, nxt);
    cp_async_wait<0>();
    // Round r's x has landed; every thread is done with the previous item (its x buffer, which
    // the next copy overwrites, and its partials, which this item's overwrite).
    __syncthreads();
    if (has_next && next_r != r) stage_x(next_r);
    cp_async_commit();
    if (c < chunks) {
      const __nv_bfloat16* a_lane = a_off >= 0 ? x_s + (r & 1) * x_elems + a_off : a_zero;
      float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
      for (int s = 0; s < kGemmChunkTiles; ++s) {
        if (c * kGemmChunkTiles + s >= k_tiles) break;
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          uint32_t a[4];
          ldmatrix_x4(a, a_lane + s * 64 + kk * 16);
          const uint4& b = cur[s][kk >> 1];
          mma_bf16(acc, a, (kk & 1) ? b.z : b.x, (kk & 1) ? b.w : b.y);
        }
      }
      float* dst = partial + (cw * p.M + g) * S::kPartialLd + jt * 8 + 2 * t;
      if (g < p.M) *reinterpret_cast<float2*>(dst) = make_float2(acc[0], acc[1]);
      if (g + 8 < p.M) *reinterpret_cast<float2*>(dst + 8 * S::kPartialLd) = make_float2(acc[2], acc[3]);
    }
    __syncthreads();  // the item's partials are in shared memory
    const int n = chunks - r * CW;  // the last round may hold fewer than CW chunks
    if constexpr (WALK == SplitKWalk::kSplitK) {
      if (row < p.M) {
#pragma unroll
        for (int j = 0; j < CW; ++j)
          if (j < n) tile_partials[int64_t(r * CW + j) * kTileOutputs] = partial[(j * p.M + row) * S::kPartialLd + cl];
      }
    } else {
      if (row < p.M) {
#pragma unroll
        for (int j = 0; j < CW; ++j)
          if (j < n) total += partial[(j * p.M + row) * S::kPartialLd + cl];
      }
      if (kColumnItems) {  // the column block is complete
        // The next kernel may start streaming its weights while the last epilogue stores.
        if (!has_next && !p.early_trigger) pdl_launch_dependents();
        finish_column(col);
        total = 0.0f;
      }
    }
  };
  for (int i = 0; i < n_items; i += 2) {
    run_item(i, b_even, b_odd);
    if (i + 1 < n_items) run_item(i + 1, b_odd, b_even);
  }
  if constexpr (WALK == SplitKWalk::kOneColumn) {
    if (!p.early_trigger) pdl_launch_dependents();
    finish_column(col_begin);
  } else if constexpr (WALK == SplitKWalk::kSplitK) {
    if (!p.early_trigger) pdl_launch_dependents();
    // Publish this block's partials; the tile's last block adds all of them in chunk order.
    __shared__ int is_last;
    const int tile = blockIdx.x;
    __threadfence();
    __syncthreads();
    if (tid == 0) {
      const unsigned before = atomicAdd(p.k_counters + tile, 1u);
      is_last = before == gridDim.z - 1;
      if (is_last) p.k_counters[tile] = 0;  // every block of the tile has arrived: ready for the next launch
    }
    __syncthreads();
    if (!is_last) return;
    __threadfence();
    if (row < p.M) {
      for (int c = 0; c < chunks; ++c) total += __ldcg(tile_partials + int64_t(c) * kTileOutputs);
    }
    finish_column(col_begin);
  }
}

}  // namespace longspec::cuda
