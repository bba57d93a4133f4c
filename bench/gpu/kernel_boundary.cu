// Kernel-boundary explorer: what a dependent kernel launch costs a small model's decode step. A
// chain of single-row GEMVs shaped like a SmolLM2 layer's four products (576 -> 960 -> 576 ->
// 1536 -> 576, 30 layers: 120 dependent GEMVs over 172 MB of bf16 weights, more than L2 holds)
// runs three ways, every output computed by the same warp code (so the same bits, checked):
//   graph    one kernel per GEMV, each loading its weight rows before griddepcontrol.wait
//            (programmatic dependent launch), the chain captured as one CUDA graph: how the
//            engine runs a step today;
//   flags    one persistent kernel, a block per SM (a cooperative launch, so all are resident);
//            every GEMV counts its finished outputs in a ready counter, and a warp waits for the
//            previous GEMV's count (an acquire load) only after its own weight row is in
//            registers: no boundary, the next product starts on a warp as soon as its input is
//            complete;
//   gridsync the same persistent kernel with a grid-wide barrier between GEMVs.
// Prints us per GEMV for each way and the bandwidth floor (weights only; one row's activations
// are noise). What it decides: whether a persistent kernel per step (bench/gpu/pending/README.md,
// item 6) can take the boundary cost out of a launch-bound step, before anything is built on it.
//
//   nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -I cuda -I bench/gpu \
//     bench/gpu/kernel_boundary.cu -o /tmp/kernel_boundary
//   /tmp/kernel_boundary [layers (30)] [iterations (50)]
#include <cooperative_groups.h>
#include <cuda/atomic>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "explorer_util.cuh"
#include "ptx.cuh"

using namespace longspec::cuda;
namespace cg = cooperative_groups;

namespace {

constexpr int kWarps = 8;                 // warps per block
constexpr int kThreads = 32 * kWarps;
constexpr int kMaxChunksPerLane = 8;      // K up to 32 lanes x 8 chunks x 8 elements = 2048

struct Gemv {
  const __nv_bfloat16* w;  // [n][k], rows contiguous
  const __nv_bfloat16* x;  // [k]
  __nv_bfloat16* y;        // [n]
  int n, k;
};

struct Chain {
  const Gemv* gemvs;  // device array
  int count;
  unsigned* ready;    // per GEMV: outputs finished, summed over launches (flags)
  unsigned epoch;     // launches before this one (flags: a GEMV is complete at (epoch + 1) * n)
};

// Lane `lane`'s chunks of row `row` (8 bf16 each: chunks lane, lane + 32, ...), into registers.
__device__ __forceinline__ void load_row(const Gemv& g, int row, int lane, uint4 (&w)[kMaxChunksPerLane]) {
  const uint4* src = reinterpret_cast<const uint4*>(g.w + size_t(row) * g.k);
  const int chunks = g.k / 8;
#pragma unroll
  for (int i = 0; i < kMaxChunksPerLane; ++i) {
    const int c = lane + 32 * i;
    w[i] = c < chunks ? ldg_stream_16(reinterpret_cast<const __nv_bfloat16*>(src + c)) : make_uint4(0, 0, 0, 0);
  }
}

// y[row] = w[row] . x, fp32: a lane's chunks in order, elements in order, then a fixed butterfly;
// x read past L1 (other SMs wrote it during this launch).
__device__ __forceinline__ void finish_row(const Gemv& g, int row, int lane, const uint4 (&w)[kMaxChunksPerLane]) {
  const int chunks = g.k / 8;
  float acc = 0.0f;
#pragma unroll
  for (int i = 0; i < kMaxChunksPerLane; ++i) {
    const int c = lane + 32 * i;
    if (c >= chunks) break;
    const uint4 xv = __ldcg(reinterpret_cast<const uint4*>(g.x) + c);
    const __nv_bfloat162* wp = reinterpret_cast<const __nv_bfloat162*>(&w[i]);
    const __nv_bfloat162* xp = reinterpret_cast<const __nv_bfloat162*>(&xv);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 wf = __bfloat1622float2(wp[e]), xf = __bfloat1622float2(xp[e]);
      acc = __fmaf_rn(wf.x, xf.x, acc);
      acc = __fmaf_rn(wf.y, xf.y, acc);
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) acc = __fadd_rn(acc, __shfl_xor_sync(0xffffffffu, acc, o));
  if (lane == 0) g.y[row] = __float2bfloat16_rn(acc);
}

// graph: one GEMV per launch; weights first, then the wait for the previous kernel.
__global__ void __launch_bounds__(kThreads) gemv_kernel(Gemv g) {
  const int lane = threadIdx.x & 31;
  const int warp = blockIdx.x * kWarps + (threadIdx.x >> 5), warps = gridDim.x * kWarps;
  uint4 w[kMaxChunksPerLane];
  int row = warp;
  if (row < g.n) load_row(g, row, lane, w);
  pdl_launch_dependents();
  pdl_wait();
  for (; row < g.n; row += warps) {
    if (row != warp) load_row(g, row, lane, w);
    finish_row(g, row, lane, w);
  }
}

// flags / gridsync: the whole chain in one launch.
template <bool kGridSync>
__global__ void __launch_bounds__(kThreads) chain_kernel(Chain chain) {
  const int lane = threadIdx.x & 31;
  const int warp = blockIdx.x * kWarps + (threadIdx.x >> 5), warps = gridDim.x * kWarps;
  for (int gi = 0; gi < chain.count; ++gi) {
    const Gemv g = chain.gemvs[gi];
    uint4 w[kMaxChunksPerLane];
    int row = warp;
    if (row < g.n) load_row(g, row, lane, w);
    if (kGridSync) {
      if (gi > 0) cg::this_grid().sync();
    } else if (gi > 0 && row < g.n) {
      const unsigned target = (chain.epoch + 1) * unsigned(chain.gemvs[gi - 1].n);
      cuda::atomic_ref<unsigned, cuda::thread_scope_device> prev(chain.ready[gi - 1]);
      while (prev.load(cuda::memory_order_acquire) < target) {
      }
    }
    for (; row < g.n; row += warps) {
      if (row != warp) load_row(g, row, lane, w);
      finish_row(g, row, lane, w);
      if (!kGridSync) {
        __syncwarp();
        if (lane == 0) {
          cuda::atomic_ref<unsigned, cuda::thread_scope_device> done(chain.ready[gi]);
          done.fetch_add(1u, cuda::memory_order_release);
        }
      }
    }
  }
}

double Elapsed(cudaEvent_t a, cudaEvent_t b) {
  float ms = 0.0f;
  EXPLORER_CHECK(cudaEventElapsedTime(&ms, a, b));
  return ms * 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  const int layers = argc > 1 ? std::atoi(argv[1]) : 30;
  const int iterations = argc > 2 ? std::atoi(argv[2]) : 50;
  cudaDeviceProp prop;
  EXPLORER_CHECK(cudaGetDeviceProperties(&prop, 0));
  const int blocks = prop.multiProcessorCount;
  // A layer's four products at SmolLM2's sizes (the o product takes the 960 qkv columns as its K
  // to keep the chain's shapes consistent; the byte count is what matters).
  const int dims[5] = {576, 960, 576, 1536, 576};
  std::vector<Gemv> host;
  size_t weight_bytes = 0, act_elems = 576;
  for (int l = 0; l < layers; ++l)
    for (int j = 0; j < 4; ++j) act_elems += dims[j + 1];
  __nv_bfloat16* acts = nullptr;
  EXPLORER_CHECK(cudaMalloc(&acts, act_elems * 2));
  explorer_fill_bf16<<<64, 256>>>(acts, 576, 7u);
  size_t act_at = 0;
  for (int l = 0; l < layers; ++l) {
    for (int j = 0; j < 4; ++j) {
      Gemv g{};
      g.k = dims[j];
      g.n = dims[j + 1];
      __nv_bfloat16* w = nullptr;
      EXPLORER_CHECK(cudaMalloc(&w, size_t(g.n) * g.k * 2));
      // Uniform in (-s, s) with s = sqrt(3 / k): activations keep their size along the chain.
      explorer_fill_bf16<<<256, 256>>>(w, size_t(g.n) * g.k, 1000u + 4u * l + j, std::sqrt(3.0f / g.k));
      g.w = w;
      g.x = acts + act_at;
      act_at += g.k;
      g.y = acts + act_at;
      weight_bytes += size_t(g.n) * g.k * 2;
      host.push_back(g);
    }
  }
  const int count = int(host.size());
  Gemv* gemvs = nullptr;
  unsigned* ready = nullptr;
  EXPLORER_CHECK(cudaMalloc(&gemvs, sizeof(Gemv) * count));
  EXPLORER_CHECK(cudaMemcpy(gemvs, host.data(), sizeof(Gemv) * count, cudaMemcpyHostToDevice));
  EXPLORER_CHECK(cudaMalloc(&ready, sizeof(unsigned) * count));
  EXPLORER_CHECK(cudaMemset(ready, 0, sizeof(unsigned) * count));
  EXPLORER_CHECK(cudaDeviceSynchronize());
  const size_t out_elems = dims[4];
  const __nv_bfloat16* out = host.back().y;

  cudaStream_t stream;
  EXPLORER_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaEvent_t t0, t1;
  EXPLORER_CHECK(cudaEventCreate(&t0));
  EXPLORER_CHECK(cudaEventCreate(&t1));
  std::printf("device %s, %d SMs; %d layers, %d GEMVs, %.1f MB of weights; floor %.2f us a GEMV at 4.42 TB/s\n",
              prop.name, blocks, layers, count, weight_bytes / 1e6, weight_bytes / 4.42e12 * 1e6 / count);

  // graph: the chain as one CUDA graph of PDL launches.
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  EXPLORER_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < count; ++i) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(blocks);
    cfg.blockDim = dim3(kThreads);
    cfg.stream = stream;
    cudaLaunchAttribute attr{};
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    EXPLORER_CHECK(cudaLaunchKernelEx(&cfg, gemv_kernel, host[i]));
  }
  EXPLORER_CHECK(cudaStreamEndCapture(stream, &graph));
  EXPLORER_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  std::vector<uint16_t> ref(out_elems), got(out_elems);
  EXPLORER_CHECK(cudaGraphLaunch(exec, stream));  // warm-up
  EXPLORER_CHECK(cudaStreamSynchronize(stream));
  EXPLORER_CHECK(cudaMemcpy(ref.data(), out, out_elems * 2, cudaMemcpyDeviceToHost));
  {  // the chain's output must be finite and not all zero, or "same bits" would say little
    int finite = 0, nonzero = 0;
    float biggest = 0.0f;
    for (uint16_t b : ref) {
      uint32_t u = uint32_t(b) << 16;
      float v;
      std::memcpy(&v, &u, 4);
      finite += std::isfinite(v);
      nonzero += v != 0.0f;
      if (std::isfinite(v)) biggest = std::fmax(biggest, std::fabs(v));
    }
    std::printf("output: %d of %zu finite, %d nonzero, max |y| %.3g\n", finite, out_elems, nonzero, biggest);
  }
  EXPLORER_CHECK(cudaEventRecord(t0, stream));
  for (int it = 0; it < iterations; ++it) EXPLORER_CHECK(cudaGraphLaunch(exec, stream));
  EXPLORER_CHECK(cudaEventRecord(t1, stream));
  EXPLORER_CHECK(cudaEventSynchronize(t1));
  const double graph_us = Elapsed(t0, t1) / iterations;
  std::printf("%-9s %9.1f us a chain %7.2f us a GEMV\n", "graph", graph_us, graph_us / count);

  // flags and gridsync: one cooperative launch per chain.
  unsigned epoch = 0;
  auto run_chain = [&](bool grid_sync) {
    Chain chain{gemvs, count, ready, epoch};
    void* args[] = {&chain};
    EXPLORER_CHECK(cudaLaunchCooperativeKernel(grid_sync ? (void*)chain_kernel<true> : (void*)chain_kernel<false>,
                                               dim3(blocks), dim3(kThreads), args, 0, stream));
    if (!grid_sync) ++epoch;
  };
  for (bool grid_sync : {false, true}) {
    const char* name = grid_sync ? "gridsync" : "flags";
    int resident = 0;
    EXPLORER_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &resident, grid_sync ? chain_kernel<true> : chain_kernel<false>, kThreads, 0));
    if (resident < 1) {
      std::printf("%-9s not resident\n", name);
      continue;
    }
    EXPLORER_CHECK(cudaMemset(acts + 576, 0, (act_elems - 576) * 2));
    run_chain(grid_sync);
    EXPLORER_CHECK(cudaStreamSynchronize(stream));
    EXPLORER_CHECK(cudaMemcpy(got.data(), out, out_elems * 2, cudaMemcpyDeviceToHost));
    const bool same = std::memcmp(ref.data(), got.data(), out_elems * 2) == 0;
    EXPLORER_CHECK(cudaEventRecord(t0, stream));
    for (int it = 0; it < iterations; ++it) run_chain(grid_sync);
    EXPLORER_CHECK(cudaEventRecord(t1, stream));
    EXPLORER_CHECK(cudaEventSynchronize(t1));
    const double us = Elapsed(t0, t1) / iterations;
    std::printf("%-9s %9.1f us a chain %7.2f us a GEMV  (%s bits as graph)\n", name, us, us / count,
                same ? "same" : "DIFFERENT");
  }
  return 0;
}
