// AVX2 element-wise kernels that need exp; the same operations as their portable twins in
// cpu_backend.cc, eight lanes at a time, the tail through a padded vector.
#if !defined(LONGSPEC_SKIP_AVX2)
#include <immintrin.h>

#include "cpu/cpu_kernels.h"
#include "cpu/cpu_simd_avx2.h"

namespace longspec::cpu {
namespace {

static inline __m256 SiluMul8(__m256 g, __m256 u) {
  const __m256 e = Exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

}  // namespace

void SiluMulAvx2(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, SiluMul8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (i < n) {
    const __m256i mask = TailMask(static_cast<int>(n - i));
    const __m256 y = SiluMul8(_mm256_maskload_ps(gate + i, mask), _mm256_maskload_ps(up + i, mask));
    _mm256_maskstore_ps(out + i, mask, y);
  }
}

void ExpAvx2(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, Exp8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i mask = TailMask(static_cast<int>(n - i));
    _mm256_maskstore_ps(y + i, mask, Exp8(_mm256_maskload_ps(x + i, mask)));
  }
}

}  // namespace longspec::cpu
#endif
