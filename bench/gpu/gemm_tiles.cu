// Tile-shape explorer for the GEMM's tile kernel at verification row counts (17..128 rows): every
// candidate GemmTile is timed on the model shapes, back to back in one process, and its output is
// compared bit for bit with the first candidate's (the reduction order of gemm_common.cuh makes every
// tiling give the same bits, so any difference is a bug). Not part of the library: it exists to
// choose the launcher's tile table from measurements.
//
//   nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -I cuda -I bench/gpu bench/gpu/gemm_tiles.cu -o /tmp/gemm_tiles
//   [NARROW=1 | WGMMA=1 | MSPLIT=1 | DEEPK=1] [SHAPE=..] [ONLY=..] /tmp/gemm_tiles [rows...]   (default: 69; NARROW=1: deeper pipelines of the
//   thin tiles; WGMMA=1: the warpgroup-MMA candidate (gemm_wgmma_candidate.cuh) beside the wide tiles)
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "gemm_wgmma_candidate.cuh"
#include "explorer_util.cuh"

using namespace longspec::cuda;

namespace {

struct Shape {
  const char* name;
  int n, k;
};

struct Candidate {
  std::string name;
  // Launches one GEMM (M rows) on the stream; returns the block count.
  int (*launch)(const GemmParams&, cudaStream_t);
  size_t smem;
  int bm;
};

template <class T>
int LaunchTile(const GemmParams& p, cudaStream_t s) {
  const dim3 grid((p.N + T::kBN - 1) / T::kBN, (p.M + T::kBM - 1) / T::kBM);
  gemm_bf16_kernel<T, GemmEpilogue::kStoreF32><<<grid, T::kThreads, T::kSmemBytes, s>>>(p);
  return int(grid.x * grid.y);
}

template <int WM, int WNW, int MT, int WN, int ST, int BK = 64>
Candidate Make() {
  using T = GemmTile<WM, WNW, MT, WN, ST, BK>;
  EXPLORER_CHECK(cudaFuncSetAttribute(gemm_bf16_kernel<T, GemmEpilogue::kStoreF32>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, int(T::kSmemBytes)));
  char name[96];
  char bk[16] = "";
  if (BK != 64) std::snprintf(bk, sizeof(bk), ",k%d", BK);
  std::snprintf(name, sizeof(name), "<%d,%d,%d,%d,%d%s> %dx%d %dw %zuKB", WM, WNW, MT, WN, ST, bk, T::kBM, T::kBN,
                WM * WNW, T::kSmemBytes / 1024);
  return Candidate{name, &LaunchTile<T>, T::kSmemBytes, T::kBM};
}

template <class T>
int LaunchWg(const GemmParams& p, cudaStream_t s) {
  const dim3 grid((p.N + T::kBN - 1) / T::kBN, (p.M + T::kNX - 1) / T::kNX);
  gemm_bf16_wgmma_kernel<T, GemmEpilogue::kStoreF32><<<grid, T::kThreads, T::kSmemBytes, s>>>(p);
  return int(grid.x * grid.y);
}

template <int NX, int WGS>
Candidate MakeWg() {
  using T = GemmWgTile<NX, WGS>;
  EXPLORER_CHECK(cudaFuncSetAttribute(gemm_bf16_wgmma_kernel<T, GemmEpilogue::kStoreF32>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, int(T::kSmemBytes)));
  cudaFuncAttributes attr;
  EXPLORER_CHECK(cudaFuncGetAttributes(&attr, gemm_bf16_wgmma_kernel<T, GemmEpilogue::kStoreF32>));
  char name[96];
  std::snprintf(name, sizeof(name), "wgmma %dx%d %dwg %zuKB %dregs", NX, T::kBN, WGS, T::kSmemBytes / 1024,
                attr.numRegs);
  return Candidate{name, &LaunchWg<T>, T::kSmemBytes, NX};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> rows_list;
  for (int i = 1; i < argc; ++i) rows_list.push_back(std::atoi(argv[i]));
  if (rows_list.empty()) rows_list.push_back(69);
  cudaDeviceProp prop;
  EXPLORER_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("# %s, %d SMs\n", prop.name, prop.multiProcessorCount);

  const Shape shapes[] = {
      {"llama8b qkv", 6144, 4096},     {"llama8b o", 4096, 4096},          {"llama8b gate_up", 28672, 4096},
      {"llama8b down", 4096, 14336},   {"llama8b lm_head", 128256, 4096},  {"qwen1.5b qkv", 2048, 1536},
      {"qwen1.5b o", 1536, 1536},      {"qwen1.5b gate_up", 17920, 1536},  {"qwen1.5b down", 1536, 8960},
      {"qwen1.5b lm_head", 151936, 1536},
      {"qwen0.5b gate_up", 9728, 896}, {"qwen0.5b lm_head", 151936, 896},  {"smollm2 lm_head", 49152, 576},
      {"awkward", 200, 1000},  // K not a multiple of 64 (a stage's last 64-k parts past K), N not of 32
  };
  const bool narrow = std::getenv("NARROW") != nullptr;  // NARROW=1: pipeline depths of the thin tiles
  const bool wg = std::getenv("WGMMA") != nullptr;        // WGMMA=1: warpgroup MMA beside the wide tiles
  // MSPLIT=1: tiles whose warps split the rows (one m16 tile each) beside the launcher's tiles
  // whose warps each hold all rows; every shape.
  const bool msplit = std::getenv("MSPLIT") != nullptr;
  // DEEPK=1: stages of 128 and 256 k (one barrier per more bytes) beside the 64-k ones.
  const bool deepk = std::getenv("DEEPK") != nullptr;
  // SHAPE=<substring>, ONLY=<substring>: one shape / the candidates whose names contain it (for
  // Nsight Compute on one kernel); the reference still runs first.
  const char* shape_only = std::getenv("SHAPE");
  const char* cand_only = std::getenv("ONLY");
  // The first candidate is the reference; the others are measured against it.
  std::vector<Candidate> cands = deepk ? std::vector<Candidate>{
      Make<1, 2, 5, 2, 12>(), Make<5, 2, 1, 2, 12>(), Make<5, 2, 1, 2, 6, 128>(), Make<5, 2, 1, 2, 4, 128>(),
      Make<5, 2, 1, 2, 3, 256>(), Make<5, 1, 1, 4, 6>(), Make<5, 1, 1, 4, 6, 128>(), Make<5, 1, 1, 4, 3, 256>(),
      Make<1, 4, 5, 2, 4>(), Make<1, 4, 5, 2, 4, 128>(), Make<5, 2, 1, 4, 4, 128>(), Make<5, 2, 1, 4, 3, 256>(),
      Make<1, 8, 5, 4, 3>(), Make<8, 1, 1, 4, 8>(), Make<8, 1, 1, 4, 4, 128>(), Make<8, 2, 1, 2, 4, 128>(),
      Make<1, 4, 2, 4, 6>(),
  } : msplit ? std::vector<Candidate>{
      Make<1, 2, 5, 2, 12>(), Make<5, 1, 1, 4, 12>(), Make<5, 2, 1, 2, 12>(), Make<5, 1, 1, 4, 6>(),
      Make<5, 1, 1, 8, 6>(), Make<5, 2, 1, 4, 6>(), Make<1, 4, 5, 2, 4>(), Make<1, 8, 5, 4, 3>(),
      Make<5, 2, 1, 8, 4>(), Make<5, 4, 1, 8, 3>(), Make<5, 4, 1, 4, 4>(), Make<8, 1, 1, 4, 8>(),
      Make<8, 2, 1, 4, 4>(), Make<1, 4, 8, 2, 4>(), Make<1, 4, 2, 4, 6>(),
  } : wg ? std::vector<Candidate>{
      Make<1, 8, 5, 4, 3>(), Make<1, 4, 5, 2, 4>(), Make<1, 4, 2, 4, 6>(), MakeWg<80, 1>(), MakeWg<80, 2>(),
      MakeWg<48, 1>(), MakeWg<48, 2>(),
  } : narrow ? std::vector<Candidate>{
      Make<1, 2, 5, 2, 6>(), Make<1, 2, 5, 2, 8>(), Make<1, 2, 5, 2, 10>(), Make<1, 2, 5, 2, 12>(),
      Make<1, 2, 5, 2, 14>(), Make<1, 4, 5, 2, 8>(), Make<1, 2, 3, 2, 12>(), Make<1, 2, 2, 2, 16>(),
  } : std::vector<Candidate>{
      Make<1, 2, 8, 2, 4>(), Make<1, 2, 5, 2, 4>(), Make<1, 2, 5, 2, 6>(), Make<1, 4, 5, 2, 4>(),
      Make<1, 4, 5, 2, 6>(), Make<1, 8, 5, 2, 4>(), Make<1, 4, 5, 4, 4>(), Make<1, 8, 5, 4, 3>(),
      Make<1, 4, 8, 2, 4>(), Make<1, 8, 8, 2, 3>(), Make<2, 4, 3, 2, 4>(), Make<2, 4, 4, 2, 4>(),
      Make<1, 4, 2, 4, 6>(), Make<1, 8, 2, 2, 6>(), Make<1, 4, 3, 4, 6>(),
  };

  cudaStream_t stream;
  EXPLORER_CHECK(cudaStreamCreate(&stream));
  cudaEvent_t e0, e1;
  EXPLORER_CHECK(cudaEventCreate(&e0));
  EXPLORER_CHECK(cudaEventCreate(&e1));
  for (const Shape& sh : shapes) {
    if (narrow && sh.n >= 6144) continue;
    if (shape_only && !std::strstr(sh.name, shape_only)) continue;
    if (wg && sh.n < 6144) continue;
    const size_t w_elems = size_t(GemmPaddedTiles(sh.n)) * 8 * GemmKTiles(sh.k) * 64;
    // Enough weight copies to exceed the 50 MB L2 several times over.
    const int copies = int(std::max<size_t>(1, (400u << 20) / (w_elems * 2)));
    __nv_bfloat16* w = nullptr;
    EXPLORER_CHECK(cudaMalloc(&w, w_elems * 2 * copies));
    explorer_fill_bf16<<<1024, 256>>>(w, w_elems * copies, 7u);
    for (int m : rows_list) {
      if (wg && m > 80) continue;
      __nv_bfloat16* x = nullptr;
      float* out = nullptr;
      float* ref = nullptr;
      EXPLORER_CHECK(cudaMalloc(&x, size_t(m) * sh.k * 2));
      EXPLORER_CHECK(cudaMalloc(&out, size_t(m) * sh.n * 4));
      EXPLORER_CHECK(cudaMalloc(&ref, size_t(m) * sh.n * 4));
      explorer_fill_bf16<<<256, 256>>>(x, size_t(m) * sh.k, 11u + m);
      const double bytes = double(sh.n) * sh.k * 2 + double(m) * sh.k * 2 + double(m) * sh.n * 4;
      const double floor_us = bytes / 4.42e12 * 1e6;
      std::printf("\n## %s %dx%d, %d rows: floor %.1f us (bytes / 4.42 TB/s)\n", sh.name, sh.n, sh.k, m, floor_us);
      for (size_t ci = 0; ci < cands.size(); ++ci) {
        const Candidate& c = cands[ci];
        if (ci > 0 && cand_only && c.name.find(cand_only) == std::string::npos) continue;
        GemmParams p;
        p.x = x;
        p.x_stride = sh.k;
        p.M = m;
        p.N = sh.n;
        p.K = sh.k;
        p.out_stride = sh.n;
        p.out = out;
        p.w = w;
        EXPLORER_CHECK(cudaMemsetAsync(out, 0xff, size_t(m) * sh.n * 4, stream));
        const int blocks = c.launch(p, stream);
        EXPLORER_CHECK(cudaGetLastError());
        EXPLORER_CHECK(cudaStreamSynchronize(stream));
        if (ci == 0) {
          EXPLORER_CHECK(cudaMemcpy(ref, out, size_t(m) * sh.n * 4, cudaMemcpyDeviceToDevice));
        }
        std::vector<float> a(size_t(m) * sh.n), b(size_t(m) * sh.n);
        EXPLORER_CHECK(cudaMemcpy(a.data(), out, a.size() * 4, cudaMemcpyDeviceToHost));
        EXPLORER_CHECK(cudaMemcpy(b.data(), ref, b.size() * 4, cudaMemcpyDeviceToHost));
        const bool same = std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
        const int iters = 60;
        for (int i = 0; i < 5; ++i) {
          p.w = w + (i % copies) * w_elems;
          c.launch(p, stream);
        }
        EXPLORER_CHECK(cudaEventRecord(e0, stream));
        for (int i = 0; i < iters; ++i) {
          p.w = w + (i % copies) * w_elems;
          c.launch(p, stream);
        }
        EXPLORER_CHECK(cudaEventRecord(e1, stream));
        EXPLORER_CHECK(cudaEventSynchronize(e1));
        float ms = 0;
        EXPLORER_CHECK(cudaEventElapsedTime(&ms, e0, e1));
        const double us = ms * 1e3 / iters;
        std::printf("%-34s blocks %6d  %8.2f us  %5.2fx floor  %s\n", c.name.c_str(), blocks, us, us / floor_us,
                    same ? "bits equal" : "BITS DIFFER");
      }
      EXPLORER_CHECK(cudaFree(x));
      EXPLORER_CHECK(cudaFree(out));
      EXPLORER_CHECK(cudaFree(ref));
    }
    EXPLORER_CHECK(cudaFree(w));
  }
  return 0;
}
