#!/usr/bin/env bash
# The whole test suite: C++ (GoogleTest via ctest), the installed C++ package
# (tests/cpp_package/run.sh) and Python (pytest).
# Expects `pip install ".[test]"` to have been run (see README). GPU tests skip without a GPU.
# GoogleTest: an installed one, else the pinned release downloaded and built (see
# third_party/googletest.cmake); LONGSPEC_CMAKE_ARGS passes extra CMake arguments, e.g.
# -DLONGSPEC_GOOGLETEST_SOURCE_DIR=/usr/src/googletest.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${LONGSPEC_TEST_BUILD_DIR:-build/tests}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGSPEC_BUILD_TESTS=ON \
      -DLONGSPEC_CUDA="${LONGSPEC_CUDA:-AUTO}" ${LONGSPEC_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
# The installed C++ package: find_package(longspec) from examples/cpp_service, run on SmolLM2.
JOBS=$JOBS bash tests/cpp_package/run.sh "$BUILD_DIR"
python3 -m pytest -q tests/python "$@"
