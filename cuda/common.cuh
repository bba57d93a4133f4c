// Shared CUDA helpers: error checking that names the call, file and line.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "longspec/status.h"

namespace longspec::cuda {

inline Status CudaStatus(cudaError_t err, const char* expr, const char* file, int line) {
  if (err == cudaSuccess) return Status::OK();
  return InternalError(std::string("CUDA call failed: ") + expr + " -> " + cudaGetErrorName(err) + " (" +
                       cudaGetErrorString(err) + ") at " + file + ":" + std::to_string(line));
}

}  // namespace longspec::cuda

// Evaluates a CUDA runtime call; on failure returns a Status naming the call, file and line.
#define LONGSPEC_CUDA_TRY(expr)                                                                   \
  do {                                                                                            \
    ::longspec::Status longspec_cuda_status_ = ::longspec::cuda::CudaStatus((expr), #expr, __FILE__, __LINE__); \
    if (!longspec_cuda_status_.ok()) return longspec_cuda_status_;                                \
  } while (0)
