// Helpers of the GPU tests: the CPU reference and the CUDA backend side by side over the same
// inputs (values rounded to bf16 first, so that both compute on identical operands), device
// buffers filled from and read back to fp32 host vectors, and the skip when no GPU is present.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "cuda_backend.h"
#include "longspec/engine.h"

namespace longspec::testing {

#define LONGSPEC_SKIP_WITHOUT_GPU() \
  if (!::longspec::CudaAvailable()) GTEST_SKIP() << "needs a CUDA device"

inline std::unique_ptr<Backend> CudaBackendOrDie() {
  auto be = cuda::MakeCudaBackend(0);
  EXPECT_TRUE(be.ok()) << be.status().ToString();
  return be.ok() ? std::move(be).value() : nullptr;
}

// A CUDA backend made with the environment variable `name` (a LONGSPEC_* setting) at `value`.
inline std::unique_ptr<Backend> CudaBackendWithEnv(const char* name, const char* value) {
  setenv(name, value, 1);
  auto be = CudaBackendOrDie();
  unsetenv(name);
  return be;
}

// A CUDA backend with the switch `name` at 0: the path the switch turns off, to compare with a
// default backend's.
inline std::unique_ptr<Backend> CudaBackendWithSwitchOff(const char* name) { return CudaBackendWithEnv(name, "0"); }

inline std::vector<float> Randn(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// RMSNorm weights around 1 (the same draws as Randn(n, rng, 0.3) plus 1).
inline std::vector<float> RandomNormWeightsHost(size_t n, std::mt19937& rng) {
  std::vector<float> w = Randn(n, rng, 0.3f);
  for (float& v : w) v += 1.0f;
  return w;
}

// Values as bf16 would hold them.
inline std::vector<float> Bf16Round(std::vector<float> v) {
  for (float& x : v) x = Bf16ToF32(F32ToBf16(x));
  return v;
}

// A host tensor of `shape` holding v.
inline HostTensor Tensor(const std::vector<float>& v, std::vector<int64_t> shape) {
  HostTensor t(std::move(shape));
  std::copy(v.begin(), v.end(), t.data());
  return t;
}

// A random weight [n, k] (values bf16-exact, scale 0.05) and bias [n] (scale 0.1), drawn in that order.
struct WeightAndBias {
  HostTensor w, b;
};
inline WeightAndBias RandomWeightAndBias(int n, int k, std::mt19937& rng) {
  return {Tensor(Bf16Round(Randn(size_t(n) * k, rng, 0.05f)), {n, k}), Tensor(Randn(n, rng, 0.1f), {n})};
}

// A [rows, cols] buffer on a backend, in `dtype`.
struct Buf {
  std::unique_ptr<DeviceBuffer> mem;
  View view;
  int32_t* ints() const { return static_cast<int32_t*>(mem->data()); }
};

inline Buf Alloc(Backend& be, int64_t rows, int64_t cols, DType dtype) {
  Buf b;
  auto m = be.Allocate(static_cast<size_t>(std::max<int64_t>(1, rows * cols)) * DTypeSize(dtype));
  EXPECT_TRUE(m.ok());
  b.mem = std::move(m).value();
  b.view.data = b.mem->data();
  b.view.dtype = dtype;
  b.view.rows = rows;
  b.view.cols = cols;
  b.view.stride = cols;
  return b;
}

inline Buf Upload(Backend& be, const std::vector<float>& host, int64_t rows, int64_t cols, DType dtype) {
  Buf b = Alloc(be, rows, cols, dtype);
  std::vector<uint8_t> raw(host.size() * DTypeSize(dtype));
  ConvertElements(DType::kF32, host.data(), dtype, raw.data(), static_cast<int64_t>(host.size()));
  be.CopyToDevice(b.mem->data(), raw.data(), raw.size());
  return b;
}

inline Buf UploadInts(Backend& be, const std::vector<int32_t>& host) {
  Buf b = Alloc(be, 1, static_cast<int64_t>(std::max<size_t>(1, host.size())), DType::kI32);
  if (!host.empty()) be.CopyToDevice(b.mem->data(), host.data(), host.size() * 4);
  return b;
}

// Rows [0, rows) of a view as fp32 host values (stride honoured).
inline std::vector<float> Download(Backend& be, const View& v) {
  const size_t es = DTypeSize(v.dtype);
  std::vector<uint8_t> raw(static_cast<size_t>(v.rows * v.stride) * es);
  if (!raw.empty()) be.CopyToHost(raw.data(), v.data, raw.size());
  std::vector<float> out(static_cast<size_t>(v.rows * v.cols));
  for (int64_t r = 0; r < v.rows; ++r)
    ConvertElements(v.dtype, raw.data() + static_cast<size_t>(r * v.stride) * es, DType::kF32, out.data() + r * v.cols,
                    v.cols);
  return out;
}

inline std::vector<int32_t> DownloadInts(Backend& be, const int32_t* p, size_t n) {
  std::vector<int32_t> out(n);
  if (n) be.CopyToHost(out.data(), p, n * 4);
  return out;
}

inline bool SameFloats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// max |a - b| / (atol + rtol |b|) over elements; <= 1 passes.
inline double WorstRatio(const std::vector<float>& got, const std::vector<float>& ref, double atol, double rtol) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) != std::isnan(ref[i])) return 1e30;
    const double r = std::fabs(double(got[i]) - ref[i]) / (atol + rtol * std::fabs(double(ref[i])));
    worst = std::max(worst, r);
  }
  return worst;
}

inline double MaxAbs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

}  // namespace longspec::testing
