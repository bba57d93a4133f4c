// Do wgmma (warpgroup MMA) and chains of mma.sync m16n8k16 give the same bits on this card?
// Kernels that mix them (a wgmma verification kernel beside an mma.sync decode kernel) rely on
// it, so this explorer checks it over hard inputs before any such kernel is trusted, for both B
// orientations the attention uses: Q K^T (K-major B, m64n64) and P V (MN-major B, m64n128), K =
// 256 (16 chained k16 steps). It also finds which descriptor offsets this layout needs (a wrong
// pair gives values far off the fp64 reference).
//
//   nvcc -O3 -std=c++17 -arch=sm_90a -I cuda bench/gpu/wgmma_parity.cu -o /tmp/wgmma_parity
#include <cuda_bf16.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "explorer_util.cuh"
#include "wgmma.cuh"

using namespace longspec::cuda;

constexpr int kM = 64, kK = 256;

__device__ uint32_t pack2(const __nv_bfloat16* p0, const __nv_bfloat16* p1) {
  __nv_bfloat162 v;
  v.x = *p0;
  v.y = *p1;
  return *reinterpret_cast<uint32_t*>(&v);
}

// A fragment of rows 16w.., k-step kk from row-major A [64][K].
__device__ void load_a(uint32_t (&a)[4], const __nv_bfloat16* A, int w, int kk, int lane) {
  const int g = lane >> 2, t = lane & 3;
  const __nv_bfloat16* r0 = A + (16 * w + g) * kK + kk * 16 + 2 * t;
  const __nv_bfloat16* r1 = r0 + 8 * kK;
  a[0] = pack2(r0, r0 + 1);
  a[1] = pack2(r1, r1 + 1);
  a[2] = pack2(r0 + 8, r0 + 9);
  a[3] = pack2(r1 + 8, r1 + 9);
}

// B element (k, n): K-major B is stored [n][K] (like keys [key][dim]); MN-major B is [K][N].
template <bool MN_MAJOR, int N>
__device__ const __nv_bfloat16* b_at(const __nv_bfloat16* B, int k, int n) {
  return MN_MAJOR ? B + k * N + n : B + n * kK + k;
}

template <bool MN_MAJOR, int N>
__global__ void chain_mma(const __nv_bfloat16* A, const __nv_bfloat16* B, float* D) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  float acc[N / 8][4] = {};
  for (int kk = 0; kk < kK / 16; ++kk) {
    uint32_t a[4];
    load_a(a, A, w, kk, lane);
    for (int j = 0; j < N / 8; ++j) {
      const int n = 8 * j + g, k0 = kk * 16 + 2 * t;
      const uint32_t b0 = pack2(b_at<MN_MAJOR, N>(B, k0, n), b_at<MN_MAJOR, N>(B, k0 + 1, n));
      const uint32_t b1 = pack2(b_at<MN_MAJOR, N>(B, k0 + 8, n), b_at<MN_MAJOR, N>(B, k0 + 9, n));
      mma_bf16(acc[j], a, b0, b1);
    }
  }
  for (int j = 0; j < N / 8; ++j)
    for (int e = 0; e < 4; ++e) D[(16 * w + g + (e >> 1) * 8) * N + 8 * j + 2 * t + (e & 1)] = acc[j][e];
}

// B in shared memory as core matrices: element (r, c) of a [rows][cols] row-major tile (r = n, c
// = k for K-major; r = k, c = n for MN-major) at (r / 8) * row_group + (c / 8) * 128 + (r % 8) *
// 16 + (c % 8) * 2 bytes, row_group = cols / 8 * 128.
template <bool MN_MAJOR, int N>
__global__ void chain_wgmma(const __nv_bfloat16* A, const __nv_bfloat16* B, float* D, int zero_start, int swap) {
  constexpr int kRows = MN_MAJOR ? kK : N, kCols = MN_MAJOR ? N : kK, kRowGroup = kCols / 8 * 128;
  extern __shared__ __align__(128) __nv_bfloat16 Bs[];  // [kRows * kCols]
  for (int i = threadIdx.x; i < kRows * kCols / 8; i += blockDim.x) {
    const int r = i / (kCols / 8), c = (i % (kCols / 8)) * 8;
    *reinterpret_cast<uint4*>(reinterpret_cast<char*>(Bs) + (r / 8) * kRowGroup + (c / 8) * 128 + (r % 8) * 16) =
        *reinterpret_cast<const uint4*>(B + r * kCols + c);
  }
  fence_proxy_async_shared();
  __syncthreads();
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  float acc[N / 2] = {};
  // K-major: k steps along columns (two core matrices = 256 bytes per k16), leading = 128, stride
  // = row group. MN-major: k steps along rows (two row groups per k16), leading = row group,
  // stride = 128. `swap` exchanges the two offsets to find which reading the hardware takes.
  uint32_t lead = MN_MAJOR ? kRowGroup : 128, stride = MN_MAJOR ? 128 : kRowGroup;
  if (swap) {
    const uint32_t x = lead;
    lead = stride;
    stride = x;
  }
  wgmma_fence_operands(acc);
  wgmma_fence();
  for (int kk = 0; kk < kK / 16; ++kk) {
    uint32_t a[4];
    load_a(a, A, w, kk, lane);
    const char* base = reinterpret_cast<const char*>(Bs) + (MN_MAJOR ? kk * 2 * kRowGroup : kk * 256);
    const uint64_t desc = wgmma_desc(base, lead, stride);
    const int scale_d = zero_start && kk == 0 ? 0 : 1;
    if constexpr (N == 64) {
      wgmma_m64n64k16<MN_MAJOR ? 1 : 0>(acc, a, desc, scale_d);
    } else {
      wgmma_m64n128k16<MN_MAJOR ? 1 : 0>(acc, a, desc, scale_d);
    }
  }
  wgmma_commit();
  wgmma_wait<0>();
  wgmma_fence_operands(acc);
  for (int j = 0; j < N / 8; ++j)
    for (int e = 0; e < 4; ++e) D[(16 * w + g + (e >> 1) * 8) * N + 8 * j + 2 * t + (e & 1)] = acc[4 * j + e];
}

static uint16_t bf16_bits(float f) {
  __nv_bfloat16 b = __float2bfloat16(f);
  uint16_t u;
  std::memcpy(&u, &b, 2);
  return u;
}
static float bf16_value(uint16_t u) {
  uint32_t x = uint32_t(u) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// Inputs: 0 normal(0,1); 1 wide exponents (2^-30..2^30, random signs: alignment and rounding of
// every product); 2 cancellation (pairs of equal values of opposite sign plus tiny terms);
// 3 softmax-like P in [0,1] with many exact zeros and V ~ normal.
static void make_inputs(int kind, int seed, int n, bool mn_major, std::vector<uint16_t>& A, std::vector<uint16_t>& B) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_int_distribution<int> ex(-30, 30);
  std::uniform_real_distribution<float> u01(0.f, 1.f);
  A.resize(kM * kK);
  B.resize(size_t(n) * kK);
  for (size_t i = 0; i < A.size(); ++i) {
    float v = nd(rng);
    if (kind == 1) v = std::ldexp(v, ex(rng));
    if (kind == 2) v = (i % 2 == 0) ? std::ldexp(1.f + u01(rng), ex(rng) / 3) : v * 1e-3f;
    if (kind == 3) v = u01(rng) < 0.3f ? 0.f : std::exp2(-8.f * u01(rng));
    A[i] = bf16_bits(v);
  }
  for (size_t i = 0; i < B.size(); ++i) {
    float v = nd(rng);
    if (kind == 1) v = std::ldexp(v, ex(rng));
    if (kind == 2) {
      // k-adjacent pairs of B equal and opposite, so A's equal pairs cancel their products.
      const size_t k = mn_major ? i / n : i % kK;
      v = (k % 2 == 0) ? 1.f : -1.f;
    }
    B[i] = bf16_bits(v);
  }
  if (kind == 2) {  // make A's k-pairs equal so the big products cancel exactly
    for (int m = 0; m < kM; ++m)
      for (int k = 0; k + 1 < kK; k += 2) A[m * kK + k + 1] = A[m * kK + k];
  }
}

template <bool MN_MAJOR, int N>
static void run(const char* name) {
  __nv_bfloat16 *dA, *dB;
  float *d1, *d2;
  EXPLORER_CHECK(cudaMalloc(&dA, kM * kK * 2));
  EXPLORER_CHECK(cudaMalloc(&dB, N * kK * 2));
  EXPLORER_CHECK(cudaMalloc(&d1, kM * N * 4));
  EXPLORER_CHECK(cudaMalloc(&d2, kM * N * 4));
  std::vector<float> h1(kM * N), h2(kM * N);
  EXPLORER_CHECK(cudaFuncSetAttribute(chain_wgmma<MN_MAJOR, N>, cudaFuncAttributeMaxDynamicSharedMemorySize, N * kK * 2));
  for (int swap = 0; swap < (MN_MAJOR ? 1 : 2); ++swap) {
    for (int zero_start = 0; zero_start < 2; ++zero_start) {
      long long diff = 0, total = 0, far = 0;
      for (int kind = 0; kind < 4; ++kind) {
        for (int seed = 0; seed < 50; ++seed) {
          std::vector<uint16_t> A, B;
          make_inputs(kind, 1000 * kind + seed, N, MN_MAJOR, A, B);
          EXPLORER_CHECK(cudaMemcpy(dA, A.data(), A.size() * 2, cudaMemcpyHostToDevice));
          EXPLORER_CHECK(cudaMemcpy(dB, B.data(), B.size() * 2, cudaMemcpyHostToDevice));
          chain_mma<MN_MAJOR, N><<<1, 128>>>(dA, dB, d1);
          chain_wgmma<MN_MAJOR, N><<<1, 128, N * kK * 2>>>(dA, dB, d2, zero_start, swap);
          EXPLORER_CHECK(cudaGetLastError());
          EXPLORER_CHECK(cudaMemcpy(h1.data(), d1, h1.size() * 4, cudaMemcpyDeviceToHost));
          EXPLORER_CHECK(cudaMemcpy(h2.data(), d2, h2.size() * 4, cudaMemcpyDeviceToHost));
          for (int m = 0; m < kM; ++m)
            for (int n = 0; n < N; ++n) {
              double ref = 0, mag = 0;
              for (int k = 0; k < kK; ++k) {
                const double a = bf16_value(A[m * kK + k]);
                const double b = bf16_value(MN_MAJOR ? B[k * N + n] : B[n * kK + k]);
                ref += a * b;
                mag += std::fabs(a * b);
              }
              const float x1 = h1[m * N + n], x2 = h2[m * N + n];
              uint32_t b1, b2;
              std::memcpy(&b1, &x1, 4);
              std::memcpy(&b2, &x2, 4);
              diff += b1 != b2;
              far += std::fabs(x2 - ref) > 1e-4 * mag + 1e-30;
              ++total;
            }
        }
      }
      std::printf("%-22s swap_offsets=%d zero_start=%d: %lld / %lld outputs differ in bits from mma.sync, %lld far from fp64\n",
                  name, swap, zero_start, diff, total, far);
    }
  }
  cudaFree(dA);
  cudaFree(dB);
  cudaFree(d1);
  cudaFree(d2);
}

int main() {
  cudaDeviceProp prop;
  EXPLORER_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, K = %d (16 chained k16 steps), 200 input sets per case\n", prop.name, kK);
  run<false, 64>("QK^T m64n64 K-major");
  run<true, 128>("PV m64n128 MN-major");
  run<true, 64>("PV m64n64 MN-major");
  return 0;
}
