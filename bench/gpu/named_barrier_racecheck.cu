// Does compute-sanitizer's racecheck follow named barriers (bar.sync id, count) that two warp
// groups of a block take different numbers of times before a __syncthreads? The pattern of
// cuda/attention_finish_wide.cuh in a few lines, race-free by the PTX rules: group 0 (warps 0-3)
// writes b[] after two of its own barriers, group 1 (warps 4-11) passes one of its own, then the
// whole block meets at __syncthreads and group 1 reads b[]. A racecheck report here is the tool's.
//   nvcc -arch=sm_90a -lineinfo -o /tmp/nbr bench/gpu/named_barrier_racecheck.cu
//   compute-sanitizer --tool racecheck /tmp/nbr; compute-sanitizer --tool synccheck /tmp/nbr
#include <cstdio>

__global__ void groups_then_block_barrier(float* out) {
  __shared__ float a[128], b[128];
  const int tid = threadIdx.x;
  if (tid < 128) {
    a[tid] = float(tid);
    asm volatile("bar.sync 1, 128;\n" ::: "memory");
    const float x = a[(tid + 1) % 128];
    asm volatile("bar.sync 1, 128;\n" ::: "memory");
    b[tid] = x;
  } else {
    asm volatile("bar.sync 2, 256;\n" ::: "memory");
  }
  __syncthreads();
  if (tid >= 128 && tid < 256) out[tid - 128] = b[tid - 128];
}

int main() {
  float* out = nullptr;
  cudaMalloc(&out, 128 * sizeof(float));
  groups_then_block_barrier<<<4, 384>>>(out);
  float h[128];
  cudaMemcpy(h, out, sizeof(h), cudaMemcpyDeviceToHost);
  int bad = 0;
  for (int i = 0; i < 128; ++i) bad += h[i] != float((i + 1) % 128);
  std::printf("%s (%d wrong)\n", bad == 0 ? "values right" : "values WRONG", bad);
  cudaFree(out);
  return bad != 0;
}
