// Device discovery for Device::kAuto / kCuda.
#include <cuda_runtime.h>

#include "common.cuh"
#include "cuda_backend.h"

namespace longspec::cuda {

int DeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

}  // namespace longspec::cuda
