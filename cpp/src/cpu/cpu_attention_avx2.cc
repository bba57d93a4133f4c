// AVX2 attention tile: the operation sequence of cpu_kernels.h, in one of two layouts.
//
// Many queries (prefill, verify): queries in vector lanes. Lane q of every vector belongs to
// query q alone: a score is one FMA chain over d for that lane, max / exp / l run down the key
// axis lane by lane, so a query's bits cannot depend on its neighbours. Keys past n[q] are
// masked out of max and l (adding +0 to l >= +0 is exact) and never enter q's p*v chain: the
// shared j loop stops at the tile's smallest n and each query finishes its own keys alone.
//
// At most 8 queries (decode, a tree row): keys in lanes, over a transposed copy of the chunk's
// K; each score is the same chain over d, and max / l are taken in key order per query. Both
// layouts therefore give the same bits, and the same bits as the portable kernel.
#if !defined(LONGSPEC_SKIP_AVX2)
#include <immintrin.h>

#include "cpu/cpu_kernels.h"
#include "cpu/cpu_simd_avx2.h"

namespace longspec::cpu {
namespace {

constexpr int kQ = kMaxTileQueries;
using ScoreRows = float (*)[kQ];  // [key][query]

// s[j][q] for keys [j0, j0 + NK) and query vectors [v0, v0 + QV): k_j[d] broadcast against q lanes.
template <int QV, int NK>
static inline void ScoreBlock(const AttnTileArgs& a, int v0, int j0, ScoreRows s) {
  __m256 c[NK][QV];
  const float* kp[NK];
#pragma GCC unroll 12
  for (int t = 0; t < NK; ++t) {
    kp[t] = a.k[j0 + t];
#pragma GCC unroll 2
    for (int v = 0; v < QV; ++v) c[t][v] = _mm256_setzero_ps();
  }
  const float* qt = a.qt + 8 * v0;
  for (int d = 0; d < a.head_dim; ++d) {
    __m256 q[QV];
#pragma GCC unroll 2
    for (int v = 0; v < QV; ++v) {
      q[v] = _mm256_load_ps(qt + d * kQ + 8 * v);
      // Keep q in a register: folded into each FMA it would be loaded NK times.
      asm("" : "+x"(q[v]));
    }
#pragma GCC unroll 12
    for (int t = 0; t < NK; ++t) {
      const __m256 kb = _mm256_broadcast_ss(kp[t] + d);
#pragma GCC unroll 2
      for (int v = 0; v < QV; ++v) c[t][v] = _mm256_fmadd_ps(kb, q[v], c[t][v]);
    }
  }
  const __m256 scale = _mm256_set1_ps(a.scale);
#pragma GCC unroll 12
  for (int t = 0; t < NK; ++t)
#pragma GCC unroll 2
    for (int v = 0; v < QV; ++v) _mm256_store_ps(s[j0 + t] + 8 * (v0 + v), _mm256_mul_ps(c[t][v], scale));
}

// Query vectors [v0, v0 + QV) against all keys: 12 accumulators per block (8 for a single
// vector: twelve key pointers would not fit the general registers and get reloaded), narrower
// blocks for the tail of the chunk.
template <int QV>
static inline void ScoreVectors(const AttnTileArgs& a, int v0, ScoreRows s) {
  constexpr int kNk = QV == 1 ? 8 : 12 / QV;
  int j = 0;
  for (; j + kNk <= a.nk; j += kNk) ScoreBlock<QV, kNk>(a, v0, j, s);
  for (; j + 4 <= a.nk; j += 4) ScoreBlock<QV, 4>(a, v0, j, s);
  for (; j + 2 <= a.nk; j += 2) ScoreBlock<QV, 2>(a, v0, j, s);
  for (; j < a.nk; ++j) ScoreBlock<QV, 1>(a, v0, j, s);
}

// Softmax down the key axis for one query vector; leaves p in s and updates m_run / l_run.
static inline void SoftmaxVector(const AttnTileArgs& a, int v, ScoreRows s, float* fa, float* fb) {
  const __m256i n = _mm256_load_si256(reinterpret_cast<const __m256i*>(a.n + 8 * v));
  const __m256 neg_inf = _mm256_set1_ps(-__builtin_inff());
  // Keys [0, all) are live in every lane that sees this chunk; past that, lanes drop out. Lanes
  // that see none of it compute garbage that the `seen` blend below throws away.
  int all = a.nk;
  for (int i = 8 * v; i < 8 * v + 8; ++i)
    if (a.n[i] > 0 && a.n[i] < all) all = a.n[i];
  __m256 m = neg_inf;
  for (int j = 0; j < all; ++j) m = _mm256_max_ps(m, _mm256_load_ps(s[j] + 8 * v));
  for (int j = all; j < a.nk; ++j) {
    const __m256 live = _mm256_castsi256_ps(_mm256_cmpgt_epi32(n, _mm256_set1_epi32(j)));
    m = _mm256_max_ps(m, _mm256_blendv_ps(neg_inf, _mm256_load_ps(s[j] + 8 * v), live));
  }
  __m256 l = _mm256_setzero_ps();
  for (int j = 0; j < all; ++j) {
    const __m256 p = Exp8(_mm256_sub_ps(_mm256_load_ps(s[j] + 8 * v), m));
    _mm256_store_ps(s[j] + 8 * v, p);
    l = _mm256_add_ps(l, p);
  }
  for (int j = all; j < a.nk; ++j) {
    const __m256 live = _mm256_castsi256_ps(_mm256_cmpgt_epi32(n, _mm256_set1_epi32(j)));
    const __m256 p = _mm256_and_ps(Exp8(_mm256_sub_ps(_mm256_load_ps(s[j] + 8 * v), m)), live);
    _mm256_store_ps(s[j] + 8 * v, p);
    l = _mm256_add_ps(l, p);
  }
  const __m256 seen = _mm256_castsi256_ps(_mm256_cmpgt_epi32(n, _mm256_setzero_si256()));
  const __m256 mo = _mm256_load_ps(a.m_run + 8 * v), lo = _mm256_load_ps(a.l_run + 8 * v);
  const __m256 mn = _mm256_max_ps(mo, m);
  const __m256 va = Exp8(_mm256_sub_ps(mo, mn)), vb = Exp8(_mm256_sub_ps(m, mn));
  const __m256 ln = _mm256_fmadd_ps(l, vb, _mm256_mul_ps(lo, va));
  _mm256_store_ps(a.m_run + 8 * v, _mm256_blendv_ps(mo, mn, seen));
  _mm256_store_ps(a.l_run + 8 * v, _mm256_blendv_ps(lo, ln, seen));
  _mm256_store_ps(fa + 8 * v, va);
  _mm256_store_ps(fb + 8 * v, vb);
}

// Where p of (key j, query q) lives: p + q * q_stride + j * j_stride.
struct PLayout {
  const float* p;
  int q_stride, j_stride;
  const float* at(int j, int q) const { return p + q * q_stride + j * j_stride; }
};

// p*v for NT queries (indices q[]) over NV vectors of dims from dim0, then the merge into their
// running acc. Keys [0, common) run in the shared register block; each query's keys past that
// continue in memory, in order.
template <int NT, int NV>
static inline void PvTile(const AttnTileArgs& a, const int* q, int common, int dim0, PLayout p,
                          const float* fa, const float* fb) {
  __m256 c[NT][NV];
#pragma GCC unroll 6
  for (int t = 0; t < NT; ++t)
#pragma GCC unroll 8
    for (int u = 0; u < NV; ++u) c[t][u] = _mm256_setzero_ps();
  for (int j = 0; j < common; ++j) {
    const float* vj = a.v[j] + dim0;
    __m256 vv[NV];
#pragma GCC unroll 8
    for (int u = 0; u < NV; ++u) vv[u] = _mm256_loadu_ps(vj + 8 * u);
#pragma GCC unroll 6
    for (int t = 0; t < NT; ++t) {
      const __m256 pj = _mm256_broadcast_ss(p.at(j, q[t]));
#pragma GCC unroll 8
      for (int u = 0; u < NV; ++u) c[t][u] = _mm256_fmadd_ps(pj, vv[u], c[t][u]);
    }
  }
#pragma GCC unroll 6
  for (int t = 0; t < NT; ++t) {
    for (int j = common; j < a.n[q[t]]; ++j) {
      const __m256 pj = _mm256_broadcast_ss(p.at(j, q[t]));
      for (int u = 0; u < NV; ++u) c[t][u] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(a.v[j] + dim0 + 8 * u), c[t][u]);
    }
    const __m256 va = _mm256_broadcast_ss(fa + q[t]), vb = _mm256_broadcast_ss(fb + q[t]);
    float* run = a.acc[q[t]] + dim0;
#pragma GCC unroll 8
    for (int u = 0; u < NV; ++u) {
      const __m256 old = _mm256_mul_ps(_mm256_loadu_ps(run + 8 * u), va);
      _mm256_storeu_ps(run + 8 * u, _mm256_fmadd_ps(c[t][u], vb, old));
    }
  }
}

// Vectors of dims per p*v block for NT queries: 8 to 12 accumulators, at most 15 registers.
constexpr int PvVectors(int nt) { return nt == 1 ? 8 : nt == 2 ? 4 : nt == 3 ? 4 : 2; }

template <int NT>
static inline void Pv(const AttnTileArgs& a, const int* q, PLayout p, const float* fa, const float* fb) {
  constexpr int kNv = PvVectors(NT);
  int common = a.n[q[0]];
  for (int t = 1; t < NT; ++t) common = a.n[q[t]] < common ? a.n[q[t]] : common;
  int dim = 0;
  for (; dim + 8 * kNv <= a.head_dim; dim += 8 * kNv) PvTile<NT, kNv>(a, q, common, dim, p, fa, fb);
  for (; dim < a.head_dim; dim += 8) PvTile<NT, 1>(a, q, common, dim, p, fa, fb);
}

// p*v and merge for every query that sees keys of this chunk, six at a time: each v load then
// feeds 6 FMAs.
static inline void PvAll(const AttnTileArgs& a, PLayout p, const float* fa, const float* fb) {
  int live[kQ];
  int count = 0;
  for (int q = 0; q < a.num_queries; ++q)
    if (a.n[q] > 0) live[count++] = q;
  int i = 0;
  for (; i + 6 <= count; i += 6) Pv<6>(a, live + i, p, fa, fb);
  switch (count - i) {
    case 5: Pv<5>(a, live + i, p, fa, fb); break;
    case 4: Pv<4>(a, live + i, p, fa, fb); break;
    case 3: Pv<3>(a, live + i, p, fa, fb); break;
    case 2: Pv<2>(a, live + i, p, fa, fb); break;
    case 1: Pv<1>(a, live + i, p, fa, fb); break;
    default: break;
  }
}

// Queries in lanes: the layout for many queries (a block of rows times a kv head's heads).
static void QueryLaneTile(const AttnTileArgs& a) {
  alignas(32) float s[kChunkKeys][kQ];
  const int qv = (a.num_queries + 7) / 8;
  int v0 = 0;
  for (; v0 + 2 <= qv; v0 += 2) ScoreVectors<2>(a, v0, s);
  if (v0 < qv) ScoreVectors<1>(a, v0, s);
  alignas(32) float fa[kQ], fb[kQ];
  for (int v = 0; v < qv; ++v) SoftmaxVector(a, v, s, fa, fb);
  PvAll(a, PLayout{&s[0][0], 1, kQ}, fa, fb);
}

// ---- Keys in lanes: for tiles of at most 8 queries (decode: one row's heads), where query
// lanes would sit mostly empty. K is transposed in 8x8 blocks and each score is still one FMA
// chain over d ascending, now in a key lane, so the bits equal those of the query-lane path.

constexpr int kKeyLaneQueries = 8;
constexpr int kHalf = kChunkKeys / 2;  // keys transposed at a time: kt is [head_dim][kHalf]

static inline void Transpose8(__m256* r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// kt[d][j] = k_{j0 + j}[d] for j < 8 * groups; rows past nk repeat the last key (their scores
// are computed and never read).
static inline void TransposeKeys(const AttnTileArgs& a, int j0, int groups, float* kt) {
  for (int g = 0; g < groups; ++g) {
    const float* rows[8];
    for (int r = 0; r < 8; ++r) rows[r] = a.k[j0 + 8 * g + r < a.nk ? j0 + 8 * g + r : a.nk - 1];
    for (int d0 = 0; d0 < a.head_dim; d0 += 8) {
      __m256 r[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(rows[i] + d0);
      Transpose8(r);
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) _mm256_store_ps(kt + (d0 + i) * kHalf + 8 * g, r[i]);
    }
  }
}

// sk[q][j0 + j] for queries [q0, q0 + NQ) and key vectors [0, KV) of kt.
template <int NQ, int KV>
static inline void KeyScoreBlock(const AttnTileArgs& a, const float* kt, int q0, int j0,
                                 float (*sk)[kChunkKeys]) {
  __m256 c[NQ][KV];
#pragma GCC unroll 3
  for (int q = 0; q < NQ; ++q)
#pragma GCC unroll 4
    for (int u = 0; u < KV; ++u) c[q][u] = _mm256_setzero_ps();
  for (int d = 0; d < a.head_dim; ++d) {
#pragma GCC unroll 3
    for (int q = 0; q < NQ; ++q) {
      const __m256 qb = _mm256_broadcast_ss(a.qt + d * kQ + q0 + q);
#pragma GCC unroll 4
      for (int u = 0; u < KV; ++u) c[q][u] = _mm256_fmadd_ps(qb, _mm256_load_ps(kt + d * kHalf + 8 * u), c[q][u]);
    }
  }
  const __m256 scale = _mm256_set1_ps(a.scale);
#pragma GCC unroll 3
  for (int q = 0; q < NQ; ++q)
#pragma GCC unroll 4
    for (int u = 0; u < KV; ++u) _mm256_store_ps(&sk[q0 + q][j0 + 8 * u], _mm256_mul_ps(c[q][u], scale));
}

template <int NQ>
static inline void KeyScores(const AttnTileArgs& a, const float* kt, int q0, int j0, int kv,
                             float (*sk)[kChunkKeys]) {
  switch (kv) {
    case 1: KeyScoreBlock<NQ, 1>(a, kt, q0, j0, sk); break;
    case 2: KeyScoreBlock<NQ, 2>(a, kt, q0, j0, sk); break;
    case 3: KeyScoreBlock<NQ, 3>(a, kt, q0, j0, sk); break;
    default: KeyScoreBlock<NQ, 4>(a, kt, q0, j0, sk); break;
  }
}

static void KeyLaneTile(const AttnTileArgs& a) {
  alignas(32) float kt[kMaxHeadDim * kHalf];
  alignas(32) float sk[kKeyLaneQueries][kChunkKeys];
  for (int j0 = 0; j0 < a.nk; j0 += kHalf) {
    const int groups = (a.nk - j0 < kHalf ? a.nk - j0 + 7 : kHalf) / 8;
    TransposeKeys(a, j0, groups, kt);
    int q0 = 0;
    for (; q0 + 3 <= a.num_queries; q0 += 3) KeyScores<3>(a, kt, q0, j0, groups, sk);
    if (a.num_queries - q0 == 2) KeyScores<2>(a, kt, q0, j0, groups, sk);
    if (a.num_queries - q0 == 1) KeyScores<1>(a, kt, q0, j0, groups, sk);
  }
  // Softmax per query along its own keys; max and l in key order, as in every other path.
  alignas(32) float da[kKeyLaneQueries] = {}, db[kKeyLaneQueries] = {}, lc[kKeyLaneQueries] = {};
  alignas(32) float mn[kKeyLaneQueries];
  for (int q = 0; q < a.num_queries; ++q) {
    const int n = a.n[q];
    if (n == 0) continue;
    float* row = sk[q];
    float m = -__builtin_inff();
    for (int j = 0; j < n; ++j) m = m > row[j] ? m : row[j];
    const __m256 mv = _mm256_set1_ps(m);
    for (int j = 0; j < n; j += 8) _mm256_store_ps(row + j, Exp8(_mm256_sub_ps(_mm256_load_ps(row + j), mv)));
    float l = 0.0f;
    for (int j = 0; j < n; ++j) l += row[j];
    const float mo = a.m_run[q];
    mn[q] = mo > m ? mo : m;
    da[q] = mo - mn[q];
    db[q] = m - mn[q];
    lc[q] = l;
  }
  alignas(32) float fa[kQ], fb[kQ];
  const __m256 va = Exp8(_mm256_load_ps(da)), vb = Exp8(_mm256_load_ps(db));
  _mm256_store_ps(fa, va);
  _mm256_store_ps(fb, vb);
  alignas(32) float ln[kKeyLaneQueries];
  _mm256_store_ps(ln, _mm256_fmadd_ps(_mm256_load_ps(lc), vb, _mm256_mul_ps(_mm256_load_ps(a.l_run), va)));
  for (int q = 0; q < a.num_queries; ++q) {
    if (a.n[q] == 0) continue;
    a.m_run[q] = mn[q];
    a.l_run[q] = ln[q];
  }
  PvAll(a, PLayout{&sk[0][0], kChunkKeys, 1}, fa, fb);
}

}  // namespace

void AttnTileAvx2(const AttnTileArgs& a) {
  if (a.num_queries <= kKeyLaneQueries) {
    KeyLaneTile(a);
  } else {
    QueryLaneTile(a);
  }
}

}  // namespace longspec::cpu
#endif
