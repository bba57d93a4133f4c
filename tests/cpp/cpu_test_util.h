// Helpers shared by the CPU backend tests: host buffers viewed as backend memory (the CPU
// backend's memory is host memory), seeded random fills, NaN poisoning and bit comparison.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "cpu/cpu_backend.h"
#include "cpu/cpu_kernels.h"

namespace longspec::testing {

inline View MakeView(std::vector<float>& buf, int64_t rows, int64_t cols, int64_t stride = -1) {
  View v;
  v.data = buf.data();
  v.dtype = DType::kF32;
  v.rows = rows;
  v.cols = cols;
  v.stride = stride < 0 ? cols : stride;
  return v;
}

inline std::vector<float> RandomVec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

inline void Poison(std::vector<float>& v) { std::fill(v.begin(), v.end(), std::numeric_limits<float>::quiet_NaN()); }

inline bool SameBits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

// The kernel tables this machine can run: portable always, AVX2 when the CPU has it.
inline std::vector<const cpu::CpuKernels*> AllKernelTables() {
  std::vector<const cpu::CpuKernels*> out = {&cpu::PortableKernels()};
  if (cpu::Avx2Kernels() != nullptr) out.push_back(cpu::Avx2Kernels());
  return out;
}

inline std::unique_ptr<Backend> MakeBackend(const cpu::CpuKernels& k, int threads) {
  return cpu::MakeCpuBackendWithKernels(threads, k);
}

// A speculation tree held in host vectors, viewed as a DeviceTree (the CPU backend's memory).
struct HostTree {
  std::vector<int32_t> tokens, parents;
  std::vector<float> scores;
  explicit HostTree(size_t n) : tokens(n, 0), parents(n, -1), scores(n, 0.0f) {}
  DeviceTree view() { return DeviceTree{tokens.data(), parents.data(), scores.data()}; }
};

}  // namespace longspec::testing
