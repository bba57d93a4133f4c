// Sampling launcher: one block per row draws that row's token (cuda/sampling.cuh).
#include <cuda_runtime.h>

#include "cuda_ops.h"
#include "sampling.cuh"
#include "sampling/sampling.h"

namespace longspec::cuda {

cudaError_t PrepareSamplingKernels() { return PrepareKernel(sample_rows_kernel, kSampleSmemBytes); }

cudaError_t LaunchSampleRows(const LaunchContext& ctx, const float* logits, int64_t stride, int vocab, int rows,
                             float temperature, int top_k, float top_p, uint64_t seed, uint64_t stream, int32_t* out) {
  if (rows <= 0) return cudaSuccess;
  if (vocab <= 0 || !(temperature > 0.0f) || top_k < 0 || !(top_p > 0.0f)) return cudaErrorInvalidValue;
  SampleRowsParams p;
  p.logits = logits;
  p.stride = stride;
  p.vocab = vocab;
  p.inv_temperature = 1.0 / static_cast<double>(temperature);
  p.top_k = top_k;
  p.top_p = top_p;
  p.seed = StreamKey(seed, stream);
  p.out = out;
  return Launch(ctx, sample_rows_kernel, dim3(rows), dim3(kSampleThreads), kSampleSmemBytes, p);
}

}  // namespace longspec::cuda
