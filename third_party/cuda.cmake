# Decides whether cuda/ is built (LONGSPEC_CUDA=AUTO|ON|OFF) and, if so, adds its sources to the
# longspec library. The kernels are written against PTX directly (mma.sync, ldmatrix, cp.async);
# CUTLASS/CuTe headers from the nvidia-cutlass wheel are put on the include path when present.
set(LONGSPEC_CUDA_ENABLED OFF)
string(TOUPPER "${LONGSPEC_CUDA}" _longspec_cuda_mode)
if(NOT _longspec_cuda_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "LONGSPEC_CUDA must be AUTO, ON or OFF (got '${LONGSPEC_CUDA}')")
endif()

if(NOT _longspec_cuda_mode STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(LONGSPEC_CUDA_ENABLED ON)
  elseif(_longspec_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "LONGSPEC_CUDA=ON but no CUDA compiler (nvcc) was found")
  else()
    message(STATUS "longspec: nvcc not found, building without CUDA (LONGSPEC_CUDA=AUTO)")
  endif()
endif()

if(LONGSPEC_CUDA_ENABLED)
  # Explicit architectures: sm_90a for Hopper features, sm_80 as the portable one
  # (LONGSPEC_CUDA_ARCHITECTURES overrides, e.g. "90a" alone for a faster build on an H100/H200).
  if(DEFINED ENV{LONGSPEC_CUDA_ARCHITECTURES} AND NOT "$ENV{LONGSPEC_CUDA_ARCHITECTURES}" STREQUAL "")
    set(CMAKE_CUDA_ARCHITECTURES "$ENV{LONGSPEC_CUDA_ARCHITECTURES}")
  endif()
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
    set(CMAKE_CUDA_ARCHITECTURES "90a;80")
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_package(CUDAToolkit REQUIRED)
  include(${CMAKE_CURRENT_LIST_DIR}/cutlass.cmake)

  file(GLOB LONGSPEC_CUDA_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/cuda/*.cu)
  target_sources(longspec PRIVATE ${LONGSPEC_CUDA_SOURCES})
  # The target was created before CUDA was enabled: give it the architecture list explicitly.
  set_target_properties(longspec PROPERTIES CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}"
                                            CUDA_SEPARABLE_COMPILATION OFF)
  target_include_directories(longspec PRIVATE ${PROJECT_SOURCE_DIR}/cuda)
  target_link_libraries(longspec PUBLIC CUDA::cudart_static)
  if(TARGET longspec_cutlass)
    target_link_libraries(longspec PRIVATE $<BUILD_INTERFACE:longspec_cutlass>)
  endif()
  target_compile_definitions(longspec PUBLIC LONGSPEC_WITH_CUDA=1)
  # LONGSPEC_ATTN_SPLIT_KEYS (environment): the attention splits' length in keys (cuda/attention.cuh,
  # 256 when unset), for a build that measures another reduction order (bench/gpu/split_keys_ab.sh).
  if(DEFINED ENV{LONGSPEC_ATTN_SPLIT_KEYS} AND NOT "$ENV{LONGSPEC_ATTN_SPLIT_KEYS}" STREQUAL "")
    if(NOT "$ENV{LONGSPEC_ATTN_SPLIT_KEYS}" MATCHES "^(64|128|256|512)$")
      message(FATAL_ERROR "LONGSPEC_ATTN_SPLIT_KEYS must be 64, 128, 256 or 512 (got '$ENV{LONGSPEC_ATTN_SPLIT_KEYS}')")
    endif()
    target_compile_definitions(longspec PRIVATE LONGSPEC_ATTN_SPLIT_KEYS=$ENV{LONGSPEC_ATTN_SPLIT_KEYS})
    message(STATUS "longspec: attention splits of $ENV{LONGSPEC_ATTN_SPLIT_KEYS} keys")
  endif()
  # 2810: nvcc warns about [[nodiscard]] on the StatusOr class template itself.
  target_compile_options(longspec PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr>
    $<$<COMPILE_LANGUAGE:CUDA>:-lineinfo>
    $<$<COMPILE_LANGUAGE:CUDA>:-diag-suppress=2810>
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-ffp-contract=off>)
  message(STATUS "longspec: CUDA backend enabled (architectures ${CMAKE_CUDA_ARCHITECTURES})")
endif()
