// Host-side entry points of the CUDA backend (no CUDA types: includable from any C++ file of a
// build with LONGSPEC_WITH_CUDA).
#pragma once

#include <memory>

#include "backend/backend.h"

namespace longspec::cuda {

// Number of visible CUDA devices (0 when the driver or device is missing).
int DeviceCount();
// The CUDA backend on `device`. Fails with a clear Status when the device cannot be used.
StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device);

}  // namespace longspec::cuda
