// Attention drivers and the portable chunk kernel.
//
// Every (row, query head) is reduced by exactly one call sequence: its key sequence is cut into
// chunks of kChunkKeys from its first key and each chunk is folded into the running state by
// the chunk kernel, chunks left to right. Work is split over (row block, kv head, head group)
// units; a unit owns its rows' state from start to finish, so neither the thread count nor the
// other rows of the call can change a row's bits. Rows of a prefix block walk the chunks
// together so a chunk's K/V is read from memory once and reused from cache by the block.
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

constexpr int kRowBlock = 8;
// Below this many q.k multiply-adds a call stays on the calling thread: waking the pool costs
// more than it saves.
constexpr int64_t kSerialWork = 1 << 18;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Which query heads a unit owns: heads [head0, head0 + count) all read kv head kv_head.
struct HeadGroup {
  int kv_head;
  int head0;
  int count;
};

int GroupsPerKvHead(int num_heads, int num_kv_heads) {
  const int per_kv = num_heads / num_kv_heads;
  return (per_kv + kMaxChunkQueries - 1) / kMaxChunkQueries;
}

HeadGroup GroupOf(int index, int num_heads, int num_kv_heads) {
  const int per_kv = num_heads / num_kv_heads;
  const int groups = GroupsPerKvHead(num_heads, num_kv_heads);
  HeadGroup g;
  g.kv_head = index / groups;
  const int first = (index % groups) * kMaxChunkQueries;
  g.head0 = g.kv_head * per_kv + first;
  g.count = std::min(kMaxChunkQueries, per_kv - first);
  return g;
}

// Running softmax state of one row's heads of a group.
struct RowState {
  float m[kMaxChunkQueries];
  float l[kMaxChunkQueries];
  int64_t num_keys = 0;
};

void InitRow(const View& out, int64_t row, const HeadGroup& g, int d, RowState* st) {
  float* o = out.row<float>(row) + static_cast<int64_t>(g.head0) * d;
  std::fill(o, o + static_cast<int64_t>(g.count) * d, 0.0f);
  for (int h = 0; h < g.count; ++h) {
    st->m[h] = kNegInf;
    st->l[h] = 0.0f;
  }
}

// out = acc / l and lse = M + log(l); a row without keys gets out = 0 (already) and lse = -inf.
void FinishRow(const View& out, float* lse, int num_heads, int64_t row, const HeadGroup& g, int d,
               const RowState& st) {
  float* o = out.row<float>(row) + static_cast<int64_t>(g.head0) * d;
  for (int h = 0; h < g.count; ++h) {
    float* lse_h = lse + row * num_heads + g.head0 + h;
    if (st.num_keys == 0) {
      *lse_h = kNegInf;
      continue;
    }
    const float l = st.l[h];
    for (int i = 0; i < d; ++i) o[h * d + i] = o[h * d + i] / l;
    *lse_h = st.m[h] + std::log(l);
  }
}

void FoldChunk(const CpuKernels& kern, const View& q, const View& out, int64_t row, const HeadGroup& g,
               int d, float scale, const float* const* kp, const float* const* vp, int n, RowState* st) {
  AttnChunkArgs a;
  a.num_queries = g.count;
  for (int h = 0; h < g.count; ++h) {
    a.q[h] = q.row<const float>(row) + static_cast<int64_t>(g.head0 + h) * d;
    a.acc[h] = out.row<float>(row) + static_cast<int64_t>(g.head0 + h) * d;
  }
  a.m_run = st->m;
  a.l_run = st->l;
  a.k = kp;
  a.v = vp;
  a.n = n;
  a.head_dim = d;
  a.scale = scale;
  kern.attn_chunk(a);
  st->num_keys += n;
}

const float* HeadBase(const void* cache, const KvLayerView& kv, int kv_head) {
  return static_cast<const float*>(cache) + static_cast<int64_t>(kv_head) * kv.capacity * kv.head_dim;
}

#ifndef NDEBUG
void CheckCommon(const View& q, const KvLayerView& kv, const View& out, const float* lse, int num_heads) {
  assert(q.dtype == DType::kF32 && out.dtype == DType::kF32 && kv.dtype == DType::kF32);
  assert(kv.num_kv_heads > 0 && num_heads % kv.num_kv_heads == 0);
  assert(kv.head_dim > 0 && kv.head_dim % 8 == 0);
  assert(q.cols >= static_cast<int64_t>(num_heads) * kv.head_dim);
  assert(out.rows == q.rows && out.cols >= static_cast<int64_t>(num_heads) * kv.head_dim);
  assert(lse != nullptr || q.rows == 0);
  (void)q, (void)kv, (void)out, (void)lse, (void)num_heads;
}
#endif

}  // namespace

void AttnChunkPortable(const AttnChunkArgs& a) {
  float p[kChunkKeys];
  for (int qi = 0; qi < a.num_queries; ++qi) {
    float m = kNegInf;
    for (int j = 0; j < a.n; ++j) {
      p[j] = DotRef(a.q[qi], a.k[j], a.head_dim) * a.scale;
      m = p[j] > m ? p[j] : m;
    }
    float l = 0.0f;
    for (int j = 0; j < a.n; ++j) {
      p[j] = ExpRef(p[j] - m);
      l += p[j];
    }
    const float mo = a.m_run[qi];
    const float mn = mo > m ? mo : m;
    const float fa = ExpRef(mo - mn), fb = ExpRef(m - mn);
    a.m_run[qi] = mn;
    a.l_run[qi] = std::fma(l, fb, a.l_run[qi] * fa);
    float* run = a.acc[qi];
    for (int i = 0; i < a.head_dim; ++i) {
      float c = 0.0f;
      for (int j = 0; j < a.n; ++j) c = std::fma(p[j], a.v[j][i], c);
      run[i] = std::fma(c, fb, run[i] * fa);
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
  const int64_t row_blocks = (rows + kRowBlock - 1) / kRowBlock;
  const int groups = p.kv.num_kv_heads * GroupsPerKvHead(p.num_heads, p.kv.num_kv_heads);
  const int64_t units = row_blocks * groups;
  int64_t keys = 0;
  for (int64_t r = 0; r < rows; ++r) keys += p.kv_len[r];
  const bool parallel = threads > 1 && units > 1 && keys * p.num_heads * d >= kSerialWork;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (parallel)
  for (int64_t u = 0; u < units; ++u) {
    const HeadGroup g = GroupOf(static_cast<int>(u % groups), p.num_heads, p.kv.num_kv_heads);
    const int64_t r0 = (u / groups) * kRowBlock;
    const int nr = static_cast<int>(std::min<int64_t>(kRowBlock, rows - r0));
    RowState st[kRowBlock];
    int64_t max_len = 0;
    for (int r = 0; r < nr; ++r) {
      InitRow(p.out, r0 + r, g, d, &st[r]);
      assert(p.kv_len[r0 + r] >= 0 && p.kv_len[r0 + r] <= p.kv.capacity);
      max_len = std::max<int64_t>(max_len, p.kv_len[r0 + r]);
    }
    const float* kbase = HeadBase(p.kv.k, p.kv, g.kv_head);
    const float* vbase = HeadBase(p.kv.v, p.kv, g.kv_head);
    const float* kp[kChunkKeys];
    const float* vp[kChunkKeys];
    for (int64_t c0 = 0; c0 < max_len; c0 += kChunkKeys) {
      const int nk = static_cast<int>(std::min<int64_t>(kChunkKeys, max_len - c0));
      for (int j = 0; j < nk; ++j) {
        kp[j] = kbase + (c0 + j) * d;
        vp[j] = vbase + (c0 + j) * d;
      }
      for (int r = 0; r < nr; ++r) {
        const int64_t n = std::min<int64_t>(kChunkKeys, p.kv_len[r0 + r] - c0);
        if (n > 0) FoldChunk(kern, p.q, p.out, r0 + r, g, d, p.scale, kp, vp, static_cast<int>(n), &st[r]);
      }
    }
    for (int r = 0; r < nr; ++r) FinishRow(p.out, p.lse, p.num_heads, r0 + r, g, d, st[r]);
  }
}

void AttentionTree(const CpuKernels& kern, int threads, const AttentionTreeParams& p) {
#ifndef NDEBUG
  CheckCommon(p.q, p.kv, p.out, p.lse, p.num_heads);
#endif
  const int d = p.kv.head_dim;
  const int64_t rows = p.q.rows;
  const int groups = p.kv.num_kv_heads * GroupsPerKvHead(p.num_heads, p.kv.num_kv_heads);
  const int64_t units = rows * groups;
  int64_t keys = p.visible_offsets[rows] - p.visible_offsets[0];
  for (int64_t r = 0; r < rows; ++r) keys += std::max<int64_t>(0, p.committed - p.band_start[r]);
  const bool parallel = threads > 1 && units > 1 && keys * p.num_heads * d >= kSerialWork;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (parallel)
  for (int64_t u = 0; u < units; ++u) {
    const HeadGroup g = GroupOf(static_cast<int>(u % groups), p.num_heads, p.kv.num_kv_heads);
    const int64_t row = u / groups;
    RowState st;
    InitRow(p.out, row, g, d, &st);
    // The row's key sequence: band positions, then its visible tree nodes.
    const int64_t band0 = p.band_start[row];
    const int64_t band_len = std::max<int64_t>(0, p.committed - band0);
    const int32_t* nodes = p.visible_nodes + p.visible_offsets[row];
    const int64_t total = band_len + (p.visible_offsets[row + 1] - p.visible_offsets[row]);
    assert(p.kv.ring == 0 || band_len <= p.kv.ring);
    const float* kbase = HeadBase(p.kv.k, p.kv, g.kv_head);
    const float* vbase = HeadBase(p.kv.v, p.kv, g.kv_head);
    const float* kp[kChunkKeys];
    const float* vp[kChunkKeys];
    for (int64_t c0 = 0; c0 < total; c0 += kChunkKeys) {
      const int n = static_cast<int>(std::min<int64_t>(kChunkKeys, total - c0));
      for (int j = 0; j < n; ++j) {
        const int64_t i = c0 + j;
        int64_t slot;
        if (i < band_len) {
          const int64_t pos = band0 + i;
          slot = p.kv.ring > 0 ? pos % p.kv.ring : pos;
        } else {
          slot = static_cast<int64_t>(p.tree_base_slot) + nodes[i - band_len];
        }
        assert(slot >= 0 && slot < p.kv.capacity);
        kp[j] = kbase + slot * d;
        vp[j] = vbase + slot * d;
      }
      FoldChunk(kern, p.q, p.out, row, g, d, p.scale, kp, vp, n, &st);
    }
    FinishRow(p.out, p.lse, p.num_heads, row, g, d, st);
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
