// Attention drivers and the portable tile kernel.
//
// Every (row, query head) is reduced by exactly one sequence of tile-kernel calls: its key
// sequence is cut into chunks of kChunkKeys from its first key and each chunk is folded into the
// running state, chunks left to right. Work is split into units of (row block, heads of one kv
// head); a unit owns its queries' state from start to finish, so neither the thread count nor
// the other rows of the call can change a row's bits. The queries of a prefix unit (up to
// kMaxTileQueries: a block of rows times the kv head's query heads) walk the chunks together, so
// each chunk's K/V is read once per unit and reused from cache by all of them.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/cpu_math.h"
#include "cpu/cpu_ops.h"

namespace longspec::cpu {

static_assert(kChunkKeys == kAttnChunk, "the CPU kernels' chunk must be the contract's chunk");

namespace {

constexpr int kQ = kMaxTileQueries;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Below this many q.k multiply-adds a call stays on the calling thread: waking the pool costs
// more than it saves.
constexpr int64_t kSerialWork = 1 << 18;

// Query heads [head0, head0 + heads) of rows [row0, row0 + rows), all reading kv head kv_head.
struct Unit {
  int kv_head = 0, head0 = 0, heads = 0;
  int64_t row0 = 0;
  int rows = 0;
};

// How a call's (row, head) pairs are cut into units: each kv head's query heads in groups of up
// to kQ, and as many rows per unit as fit the rest of the tile.
struct Split {
  int group = 0;           // query heads per unit
  int groups_per_kv = 0;
  int rows_per_unit = 0;
  int64_t row_blocks = 0;
  int64_t units = 0;
  Split(int num_heads, int num_kv_heads, int64_t rows, bool share_rows) {
    const int per_kv = num_heads / num_kv_heads;
    group = std::min(per_kv, kQ);
    groups_per_kv = (per_kv + group - 1) / group;
    rows_per_unit = share_rows ? kQ / group : 1;
    row_blocks = (rows + rows_per_unit - 1) / rows_per_unit;
    units = row_blocks * num_kv_heads * groups_per_kv;
  }
  Unit Get(int64_t u, int num_heads, int num_kv_heads, int64_t rows) const {
    const int per_kv = num_heads / num_kv_heads;
    const int64_t groups = static_cast<int64_t>(num_kv_heads) * groups_per_kv;
    const int g = static_cast<int>(u % groups);
    Unit t;
    t.kv_head = g / groups_per_kv;
    const int first = (g % groups_per_kv) * group;
    t.head0 = t.kv_head * per_kv + first;
    t.heads = std::min(group, per_kv - first);
    t.row0 = (u / groups) * rows_per_unit;
    t.rows = static_cast<int>(std::min<int64_t>(rows_per_unit, rows - t.row0));
    return t;
  }
};

// The K and V rows of one chunk of a key sequence.
struct ChunkRows {
  const float* k[kChunkKeys];
  const float* v[kChunkKeys];
  int n = 0;
};

// A unit's queries (q = row_in_unit * heads + head_in_unit) and their running state.
struct TileState {
  alignas(32) float qt[kMaxHeadDim * kQ];
  alignas(32) float m[kQ];
  alignas(32) float l[kQ];
  int64_t seen[kQ];
  AttnTileArgs args;

  void Init(const View& q, const View& out, const Unit& u, int d, float scale) {
    const int nq = u.rows * u.heads;
    std::fill(qt, qt + static_cast<int64_t>(d) * kQ, 0.0f);
    for (int i = 0; i < nq; ++i) {
      const int64_t row = u.row0 + i / u.heads, col = static_cast<int64_t>(u.head0 + i % u.heads) * d;
      const float* src = q.row<const float>(row) + col;
      for (int k = 0; k < d; ++k) qt[k * kQ + i] = src[k];
      args.acc[i] = out.row<float>(row) + col;
      std::fill(args.acc[i], args.acc[i] + d, 0.0f);
      seen[i] = 0;
    }
    std::fill(m, m + kQ, kNegInf);
    std::fill(l, l + kQ, 0.0f);
    args.num_queries = nq;
    args.qt = qt;
    args.m_run = m;
    args.l_run = l;
    args.head_dim = d;
    args.scale = scale;
  }

  // Folds chunk keys in; query i sees the first n[i] of them.
  void Fold(const CpuKernels& kern, const ChunkRows& chunk) {
    args.k = chunk.k;
    args.v = chunk.v;
    args.nk = chunk.n;
    for (int i = 0; i < args.num_queries; ++i) seen[i] += args.n[i];
    kern.attn_tile(args);
  }

  // out = acc / l and lse = M + log(l); a query without keys keeps out = 0 and gets lse = -inf.
  void Finish(float* lse, int num_heads, const Unit& u) const {
    for (int i = 0; i < args.num_queries; ++i) {
      float* lse_i = lse + (u.row0 + i / u.heads) * num_heads + u.head0 + i % u.heads;
      if (seen[i] == 0) {
        *lse_i = kNegInf;
        continue;
      }
      for (int k = 0; k < args.head_dim; ++k) args.acc[i][k] = args.acc[i][k] / l[i];
      *lse_i = m[i] + std::log(l[i]);
    }
  }
};

// Folds a key sequence of `total` keys into st chunk by chunk, left to right. fill(c0, &rows)
// gives the rows of the chunk starting at key c0; counts(c0, n) sets how many of its n keys
// each query sees.
template <typename Fill, typename Counts>
void FoldSequence(const CpuKernels& kern, int64_t total, Fill fill, Counts counts, TileState* st) {
  ChunkRows rows;
  for (int64_t c0 = 0; c0 < total; c0 += kChunkKeys) {
    fill(c0, &rows);
    counts(c0, rows.n);
    st->Fold(kern, rows);
  }
}

const float* HeadBase(const void* cache, const KvLayerView& kv, int kv_head) {
  return static_cast<const float*>(cache) + static_cast<int64_t>(kv_head) * kv.capacity * kv.head_dim;
}

#ifndef NDEBUG
void CheckCommon(const View& q, const KvLayerView& kv, const View& out, const float* lse, int num_heads) {
  assert(q.dtype == DType::kF32 && out.dtype == DType::kF32 && kv.dtype == DType::kF32);
  assert(kv.num_kv_heads > 0 && num_heads % kv.num_kv_heads == 0);
  assert(kv.head_dim > 0 && kv.head_dim % 8 == 0 && kv.head_dim <= kMaxHeadDim);
  assert(q.cols >= static_cast<int64_t>(num_heads) * kv.head_dim);
  assert(out.rows == q.rows && out.cols >= static_cast<int64_t>(num_heads) * kv.head_dim);
  assert(lse != nullptr || q.rows == 0);
  (void)q, (void)kv, (void)out, (void)lse, (void)num_heads;
}
#endif

}  // namespace

void AttnTilePortable(const AttnTileArgs& a) {
  float p[kChunkKeys];
  for (int q = 0; q < a.num_queries; ++q) {
    const int n = a.n[q];
    if (n == 0) continue;
    float m = kNegInf;
    for (int j = 0; j < n; ++j) {
      float dot = 0.0f;
      for (int d = 0; d < a.head_dim; ++d) dot = std::fma(a.qt[d * kQ + q], a.k[j][d], dot);
      p[j] = dot * a.scale;
      m = m > p[j] ? m : p[j];
    }
    float l = 0.0f;
    for (int j = 0; j < n; ++j) {
      p[j] = ExpRef(p[j] - m);
      l += p[j];
    }
    const float mo = a.m_run[q];
    const float mn = mo > m ? mo : m;
    const float fa = ExpRef(mo - mn), fb = ExpRef(m - mn);
    a.m_run[q] = mn;
    a.l_run[q] = std::fma(l, fb, a.l_run[q] * fa);
    float* run = a.acc[q];
    for (int d = 0; d < a.head_dim; ++d) {
      float c = 0.0f;
      for (int j = 0; j < n; ++j) c = std::fma(p[j], a.v[j][d], c);
      run[d] = std::fma(c, fb, run[d] * fa);
    }
  }
}

void AttentionPrefix(const CpuKernels& kern, int threads, const AttentionPrefixParams& p) {
#ifndef NDEBUG
  CheckCommon(p.q, p.kv, p.out, p.lse, p.num_heads);
  assert(p.kv.ring == 0);
#endif
  const int d = p.kv.head_dim;
  const int64_t rows = p.q.rows;
  const Split split(p.num_heads, p.kv.num_kv_heads, rows, /*share_rows=*/true);
  int64_t keys = 0;
  for (int64_t r = 0; r < rows; ++r) keys += p.kv_len[r];
  const bool parallel = threads > 1 && split.units > 1 && keys * p.num_heads * d >= kSerialWork;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (parallel)
  for (int64_t ui = 0; ui < split.units; ++ui) {
    const Unit u = split.Get(ui, p.num_heads, p.kv.num_kv_heads, rows);
    TileState st;
    st.Init(p.q, p.out, u, d, p.scale);
    int64_t max_len = 0;
    for (int r = 0; r < u.rows; ++r) {
      assert(p.kv_len[u.row0 + r] >= 0 && p.kv_len[u.row0 + r] <= p.kv.capacity);
      max_len = std::max<int64_t>(max_len, p.kv_len[u.row0 + r]);
    }
    const float* kbase = HeadBase(p.kv.k, p.kv, u.kv_head);
    const float* vbase = HeadBase(p.kv.v, p.kv, u.kv_head);
    FoldSequence(
        kern, max_len,
        [&](int64_t c0, ChunkRows* rows) {
          rows->n = static_cast<int>(std::min<int64_t>(kChunkKeys, max_len - c0));
          for (int j = 0; j < rows->n; ++j) {
            rows->k[j] = kbase + (c0 + j) * d;
            rows->v[j] = vbase + (c0 + j) * d;
          }
        },
        [&](int64_t c0, int nk) {
          for (int i = 0; i < st.args.num_queries; ++i) {
            const int64_t left = p.kv_len[u.row0 + i / u.heads] - c0;
            st.args.n[i] = static_cast<int32_t>(std::clamp<int64_t>(left, 0, nk));
          }
        },
        &st);
    st.Finish(p.lse, p.num_heads, u);
  }
}

void AttentionTree(const CpuKernels& kern, int threads, const AttentionTreeParams& p) {
#ifndef NDEBUG
  CheckCommon(p.q, p.kv, p.out, p.lse, p.num_heads);
#endif
  const int d = p.kv.head_dim;
  const int64_t rows = p.q.rows;
  // Rows have key sequences of their own, so a unit is one row.
  const Split split(p.num_heads, p.kv.num_kv_heads, rows, /*share_rows=*/false);
  int64_t keys = p.visible_offsets[rows] - p.visible_offsets[0];
  for (int64_t r = 0; r < rows; ++r) keys += std::max<int64_t>(0, p.band_end[r] - p.band_start[r]);
  const bool parallel = threads > 1 && split.units > 1 && keys * p.num_heads * d >= kSerialWork;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (parallel)
  for (int64_t ui = 0; ui < split.units; ++ui) {
    const Unit u = split.Get(ui, p.num_heads, p.kv.num_kv_heads, rows);
    const int64_t row = u.row0;
    TileState st;
    st.Init(p.q, p.out, u, d, p.scale);
    // The row's key sequence: band positions, then its visible tree nodes.
    const int64_t band0 = p.band_start[row];
    const int64_t band_len = std::max<int64_t>(0, p.band_end[row] - band0);
    const int32_t* slots = p.visible_slots + p.visible_offsets[row];
    const int64_t total = band_len + (p.visible_offsets[row + 1] - p.visible_offsets[row]);
    assert(p.kv.ring == 0 || band_len <= p.kv.ring);
    const float* kbase = HeadBase(p.kv.k, p.kv, u.kv_head);
    const float* vbase = HeadBase(p.kv.v, p.kv, u.kv_head);
    FoldSequence(
        kern, total,
        [&](int64_t c0, ChunkRows* rows) {
          rows->n = static_cast<int>(std::min<int64_t>(kChunkKeys, total - c0));
          for (int j = 0; j < rows->n; ++j) {
            const int64_t i = c0 + j;
            int64_t slot;
            if (i < band_len) {
              const int64_t pos = band0 + i;
              slot = p.kv.ring > 0 ? pos % p.kv.ring : pos;
            } else {
              slot = slots[i - band_len];
            }
            assert(slot >= 0 && slot < p.kv.capacity);
            rows->k[j] = kbase + slot * d;
            rows->v[j] = vbase + slot * d;
          }
        },
        [&](int64_t, int nk) {
          for (int i = 0; i < st.args.num_queries; ++i) st.args.n[i] = nk;
        },
        &st);
    st.Finish(p.lse, p.num_heads, u);
  }
}

// w = 1 / (1 + Exp(lse_b - lse_a)) (= sigmoid(lse_a - lse_b)); out = w * a + (1 - w) * b, each
// product rounded, then the sum. A side with lse = -inf (no keys) contributes nothing: the other
// side is copied unchanged, so an empty prefix gives out == out_b bit for bit.
void AttentionMerge(int threads, const AttentionMergeParams& p) {
  assert(p.out_a.rows == p.out_b.rows && p.out.rows == p.out_a.rows);
  const int64_t rows = p.out.rows;
  const int h_count = p.num_heads;
  const int64_t d = h_count > 0 ? p.out.cols / h_count : 0;
  const int64_t work = rows * p.out.cols;
#pragma omp parallel for schedule(static) num_threads(threads) if (work > (1 << 16) && threads > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = p.out_a.row<const float>(r);
    const float* b = p.out_b.row<const float>(r);
    float* o = p.out.row<float>(r);
    for (int h = 0; h < h_count; ++h) {
      const float la = p.lse_a[r * h_count + h], lb = p.lse_b[r * h_count + h];
      const int64_t c0 = h * d;
      if (la == kNegInf || lb == kNegInf) {
        const float* src = la == kNegInf ? b : a;
        if (src != o) std::memmove(o + c0, src + c0, d * sizeof(float));
        continue;
      }
      const float w = 1.0f / (1.0f + ExpRef(lb - la));
      const float wb = 1.0f - w;
      for (int64_t i = c0; i < c0 + d; ++i) o[i] = w * a[i] + wb * b[i];
    }
  }
}

}  // namespace longspec::cpu
