# CUTLASS / CuTe headers come from the nvidia-cutlass wheel (cutlass_library/source/include),
# declared as a build requirement in pyproject.toml. Nothing of CUTLASS is copied into this repo;
# no kernel needs it today, so a build without the wheel goes on without it.
# Override with -DLONGSPEC_CUTLASS_INCLUDE_DIR=/path/to/cutlass/include.
if(NOT LONGSPEC_CUTLASS_INCLUDE_DIR)
  find_package(Python 3.9 COMPONENTS Interpreter)
  if(Python_Interpreter_FOUND)
    execute_process(
      COMMAND ${Python_EXECUTABLE} -c
        "import cutlass_library, os; print(os.path.join(os.path.dirname(cutlass_library.__file__), 'source', 'include'))"
      OUTPUT_VARIABLE _cutlass_inc OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _cutlass_rc ERROR_QUIET)
    if(_cutlass_rc EQUAL 0 AND EXISTS "${_cutlass_inc}/cute/tensor.hpp")
      set(LONGSPEC_CUTLASS_INCLUDE_DIR "${_cutlass_inc}" CACHE PATH "CUTLASS include directory")
    endif()
  endif()
endif()
if(LONGSPEC_CUTLASS_INCLUDE_DIR AND EXISTS "${LONGSPEC_CUTLASS_INCLUDE_DIR}/cute/tensor.hpp")
  add_library(longspec_cutlass INTERFACE)
  target_include_directories(longspec_cutlass SYSTEM INTERFACE ${LONGSPEC_CUTLASS_INCLUDE_DIR})
  message(STATUS "longspec: CUTLASS headers at ${LONGSPEC_CUTLASS_INCLUDE_DIR}")
endif()
