// Internal entry points of the CPU backend beyond MakeCpuBackend (backend/backend.h).
#pragma once

#include <memory>

#include "backend/backend.h"
#include "cpu/cpu_kernels.h"

namespace longspec::cpu {

// A CPU backend running the given kernel table (tests compare PortableKernels() with the AVX2
// table). num_threads 0 = all cores.
std::unique_ptr<Backend> MakeCpuBackendWithKernels(int num_threads, const CpuKernels& kernels);

}  // namespace longspec::cpu
