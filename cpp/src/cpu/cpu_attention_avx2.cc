// AVX2 attention chunk: the sequence of operations of cpu_kernels.h, vectorised so that no
// value's arithmetic depends on which other queries or keys share a register block.
//
// Invariants: scores are computed per (query, key) pair with one 8-lane FMA chain and the fixed
// lane tree whatever the block shape (2x4, 1x8 or 1x1); p*v accumulates per (query, dim) over j
// ascending, whatever the block; the running state is only touched through the merge formula.
#if !defined(LONGSPEC_SKIP_AVX2)
#include <immintrin.h>

#include "cpu/cpu_kernels.h"
#include "cpu/cpu_simd_avx2.h"

namespace longspec::cpu {
namespace {

// Dot products of NQ queries with NK keys; acc[qi * NK + kj].
template <int NQ, int NK>
static inline void DotBlock(const float* const* q, const float* const* k, int d, __m256* acc) {
  for (int t = 0; t < NQ * NK; ++t) acc[t] = _mm256_setzero_ps();
  for (int i = 0; i < d; i += 8) {
    __m256 qv[NQ];
#pragma GCC unroll 2
    for (int qi = 0; qi < NQ; ++qi) qv[qi] = _mm256_loadu_ps(q[qi] + i);
#pragma GCC unroll 8
    for (int kj = 0; kj < NK; ++kj) {
      const __m256 kv = _mm256_loadu_ps(k[kj] + i);
#pragma GCC unroll 2
      for (int qi = 0; qi < NQ; ++qi) acc[qi * NK + kj] = _mm256_fmadd_ps(qv[qi], kv, acc[qi * NK + kj]);
    }
  }
}

// s[qi][j] = scale * dot(q_qi, k_j) for j < n.
static void Scores(const AttnChunkArgs& a, float (*s)[kChunkKeys]) {
  const int d = a.head_dim, n = a.n;
  const __m256 scale = _mm256_set1_ps(a.scale);
  int qi = 0;
  for (; qi + 2 <= a.num_queries; qi += 2) {
    const float* qp[2] = {a.q[qi], a.q[qi + 1]};
    int j = 0;
    for (; j + 4 <= n; j += 4) {
      __m256 c[8];
      DotBlock<2, 4>(qp, a.k + j, d, c);
      const __m256 r = _mm256_mul_ps(ReduceTree8(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]), scale);
      _mm_storeu_ps(&s[qi][j], _mm256_castps256_ps128(r));
      _mm_storeu_ps(&s[qi + 1][j], _mm256_extractf128_ps(r, 1));
    }
    for (; j < n; ++j) {
      __m256 c[2];
      DotBlock<2, 1>(qp, a.k + j, d, c);
      s[qi][j] = ReduceTree(c[0]) * a.scale;
      s[qi + 1][j] = ReduceTree(c[1]) * a.scale;
    }
  }
  if (qi < a.num_queries) {
    const float* qp[1] = {a.q[qi]};
    int j = 0;
    for (; j + 8 <= n; j += 8) {
      __m256 c[8];
      DotBlock<1, 8>(qp, a.k + j, d, c);
      _mm256_storeu_ps(&s[qi][j],
                       _mm256_mul_ps(ReduceTree8(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]), scale));
    }
    for (; j < n; ++j) {
      __m256 c[1];
      DotBlock<1, 1>(qp, a.k + j, d, c);
      s[qi][j] = ReduceTree(c[0]) * a.scale;
    }
  }
}

static inline float MaxOf(const float* x, int n) {
  int j = 0;
  float m = x[0];
  if (n >= 8) {
    __m256 mv = _mm256_loadu_ps(x);
    for (j = 8; j + 8 <= n; j += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + j));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    m = _mm_cvtss_f32(h);
  }
  for (; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

// acc_run[q] = fma(sum_j p[q][j] v_j, b_q, acc_run[q] * a_q) for NQ queries, NV vectors of dims
// starting at dim0.
template <int NQ, int NV>
static inline void PvBlock(const AttnChunkArgs& a, const float (*p)[kChunkKeys], int q0, int dim0,
                           const float* fa, const float* fb) {
  __m256 c[NQ][NV];
  for (int qi = 0; qi < NQ; ++qi)
    for (int t = 0; t < NV; ++t) c[qi][t] = _mm256_setzero_ps();
  for (int j = 0; j < a.n; ++j) {
    const float* vj = a.v[j] + dim0;
    __m256 vv[NV];
#pragma GCC unroll 8
    for (int t = 0; t < NV; ++t) vv[t] = _mm256_loadu_ps(vj + 8 * t);
#pragma GCC unroll 2
    for (int qi = 0; qi < NQ; ++qi) {
      const __m256 pj = _mm256_broadcast_ss(&p[q0 + qi][j]);
#pragma GCC unroll 8
      for (int t = 0; t < NV; ++t) c[qi][t] = _mm256_fmadd_ps(pj, vv[t], c[qi][t]);
    }
  }
  for (int qi = 0; qi < NQ; ++qi) {
    const __m256 va = _mm256_set1_ps(fa[q0 + qi]), vb = _mm256_set1_ps(fb[q0 + qi]);
    float* run = a.acc[q0 + qi] + dim0;
    for (int t = 0; t < NV; ++t) {
      const __m256 old = _mm256_mul_ps(_mm256_loadu_ps(run + 8 * t), va);
      _mm256_storeu_ps(run + 8 * t, _mm256_fmadd_ps(c[qi][t], vb, old));
    }
  }
}

// Every head dim of NQ queries: blocks of 8 / NQ vectors (as many accumulators as hide the FMA
// latency without spilling), then single vectors.
template <int NQ>
static inline void Pv(const AttnChunkArgs& a, const float (*p)[kChunkKeys], int q0, const float* fa,
                      const float* fb) {
  constexpr int kNv = NQ == 1 ? 8 : 4;
  int dim = 0;
  for (; dim + 8 * kNv <= a.head_dim; dim += 8 * kNv) PvBlock<NQ, kNv>(a, p, q0, dim, fa, fb);
  for (; dim < a.head_dim; dim += 8) PvBlock<NQ, 1>(a, p, q0, dim, fa, fb);
}

}  // namespace

void AttnChunkAvx2(const AttnChunkArgs& a) {
  alignas(32) float s[kMaxChunkQueries][kChunkKeys];
  Scores(a, s);

  const int nq = a.num_queries, n = a.n;
  alignas(32) float da[kMaxChunkQueries] = {}, db[kMaxChunkQueries] = {}, lc[kMaxChunkQueries];
  for (int qi = 0; qi < nq; ++qi) {
    float* row = s[qi];
    const float m = MaxOf(row, n);
    // Lanes past n hold m so the last vector is well defined; their p is never read.
    for (int j = n; j < kChunkKeys && (j & 7) != 0; ++j) row[j] = m;
    const __m256 mv = _mm256_set1_ps(m);
    for (int j = 0; j < n; j += 8) _mm256_store_ps(row + j, Exp8(_mm256_sub_ps(_mm256_load_ps(row + j), mv)));
    float l = 0.0f;
    for (int j = 0; j < n; ++j) l += row[j];
    lc[qi] = l;
    const float mo = a.m_run[qi];
    const float mn = mo > m ? mo : m;
    da[qi] = mo - mn;
    db[qi] = m - mn;
    a.m_run[qi] = mn;
  }
  alignas(32) float fa[kMaxChunkQueries], fb[kMaxChunkQueries];
  _mm256_store_ps(fa, Exp8(_mm256_load_ps(da)));
  _mm256_store_ps(fb, Exp8(_mm256_load_ps(db)));
  for (int qi = 0; qi < nq; ++qi) {
    const __m128 old = _mm_mul_ss(_mm_set_ss(a.l_run[qi]), _mm_set_ss(fa[qi]));
    a.l_run[qi] = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(lc[qi]), _mm_set_ss(fb[qi]), old));
  }

  int q0 = 0;
  for (; q0 + 2 <= nq; q0 += 2) Pv<2>(a, s, q0, fa, fb);
  if (q0 < nq) Pv<1>(a, s, q0, fa, fb);
}

}  // namespace longspec::cpu
#endif
