// The launch policy's settings from the environment (LONGSPEC_* variables, for measurements and
// debugging; each defaults to the measured choice).
#pragma once

#include <cuda_runtime.h>

#include "launch.cuh"
#include "longspec/status.h"

namespace longspec::cuda {

// Sets `ctx`'s switches and limits (not its stream, device or buffers) for a device of `prop`; a
// variable that holds no valid value is an InvalidArgument error naming it.
Status ReadLaunchSettings(const cudaDeviceProp& prop, LaunchContext* ctx);

}  // namespace longspec::cuda
