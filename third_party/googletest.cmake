# GoogleTest for the test suite, from the first of:
#   1. an installed GoogleTest (Debian's libgtest-dev, vcpkg, conda, a -DGTest_DIR=...);
#   2. an unpacked GoogleTest source tree given as -DLONGSPEC_GOOGLETEST_SOURCE_DIR=... (e.g.
#      Debian's /usr/src/googletest, or a release tarball unpacked by hand on an offline machine);
#   3. the pinned release tarball downloaded from GitHub into the build tree, hash-checked.
# Without any of them configuration stops with a message naming these three ways, so a fresh
# machine with network access needs no system package for `bash tests/run_all.sh`.
#
# No PyPI wheel fills the gap on a PyPI-only machine: the one that ships GoogleTest's sources
# (ros-gtest-vendor, a personal repackaging of ROS's vendor package) exists only for x86-64 and
# CPython 3.10-3.13 and unpacks into <prefix>/src, so it is not a dependency of `.[test]`.
set(LONGSPEC_GOOGLETEST_VERSION 1.15.2)
set(LONGSPEC_GOOGLETEST_URL
    "https://github.com/google/googletest/releases/download/v${LONGSPEC_GOOGLETEST_VERSION}/googletest-${LONGSPEC_GOOGLETEST_VERSION}.tar.gz")
set(LONGSPEC_GOOGLETEST_SHA256 7b42b4d6ed48810c5362c265a17faebe90dc2373c885e5216439d37927f02926)
set(LONGSPEC_GOOGLETEST_SOURCE_DIR "" CACHE PATH "An unpacked GoogleTest source tree to build the tests with")

find_package(GTest QUIET)
if(GTest_FOUND AND TARGET GTest::gtest AND TARGET GTest::gtest_main)
  message(STATUS "longspec: GoogleTest from the system (${GTest_DIR}${GTEST_INCLUDE_DIRS})")
  return()
endif()

include(FetchContent)
if(LONGSPEC_GOOGLETEST_SOURCE_DIR)
  if(NOT EXISTS "${LONGSPEC_GOOGLETEST_SOURCE_DIR}/googletest/CMakeLists.txt")
    message(FATAL_ERROR "LONGSPEC_GOOGLETEST_SOURCE_DIR=${LONGSPEC_GOOGLETEST_SOURCE_DIR} is not a GoogleTest "
                        "source tree (no googletest/CMakeLists.txt in it)")
  endif()
  FetchContent_Declare(googletest SOURCE_DIR "${LONGSPEC_GOOGLETEST_SOURCE_DIR}")
  message(STATUS "longspec: GoogleTest built from ${LONGSPEC_GOOGLETEST_SOURCE_DIR}")
else()
  # Downloaded here rather than by FetchContent so that a machine without network access gets a
  # message saying what to do instead of a failed sub-build.
  set(_gtest_tarball "${CMAKE_BINARY_DIR}/_deps/googletest-${LONGSPEC_GOOGLETEST_VERSION}.tar.gz")
  set(_gtest_have OFF)
  if(EXISTS "${_gtest_tarball}")
    file(SHA256 "${_gtest_tarball}" _gtest_sum)
    if(_gtest_sum STREQUAL LONGSPEC_GOOGLETEST_SHA256)
      set(_gtest_have ON)
    endif()
  endif()
  if(NOT _gtest_have)
    message(STATUS "longspec: no installed GoogleTest; downloading ${LONGSPEC_GOOGLETEST_URL}")
    file(DOWNLOAD "${LONGSPEC_GOOGLETEST_URL}" "${_gtest_tarball}.part" STATUS _gtest_status
         TIMEOUT 120 INACTIVITY_TIMEOUT 30)
    list(GET _gtest_status 0 _gtest_code)
    list(GET _gtest_status 1 _gtest_error)
    set(_gtest_sum "")
    if(_gtest_code EQUAL 0)
      file(SHA256 "${_gtest_tarball}.part" _gtest_sum)
    endif()
    if(NOT _gtest_sum STREQUAL LONGSPEC_GOOGLETEST_SHA256)
      file(REMOVE "${_gtest_tarball}.part")
      if(_gtest_code EQUAL 0)
        set(_gtest_error "SHA-256 ${_gtest_sum}, expected ${LONGSPEC_GOOGLETEST_SHA256}")
      endif()
      message(FATAL_ERROR
        "longspec's tests need GoogleTest, and none was found or could be downloaded (${_gtest_error}).\n"
        "Any one of these serves:\n"
        "  - install it: `apt-get install libgtest-dev` (Debian/Ubuntu), `brew install googletest`,\n"
        "    `conda install gtest`, or pass -DGTest_DIR=<dir holding GTestConfig.cmake>;\n"
        "  - give a GoogleTest source tree: -DLONGSPEC_GOOGLETEST_SOURCE_DIR=<dir> (Debian's\n"
        "    /usr/src/googletest, or ${LONGSPEC_GOOGLETEST_URL} unpacked);\n"
        "  - allow this download, or put that file at ${_gtest_tarball}.\n"
        "(tests/run_all.sh passes extra CMake arguments through LONGSPEC_CMAKE_ARGS.)")
    endif()
    file(RENAME "${_gtest_tarball}.part" "${_gtest_tarball}")
  endif()
  FetchContent_Declare(googletest URL "${_gtest_tarball}" URL_HASH SHA256=${LONGSPEC_GOOGLETEST_SHA256}
                       DOWNLOAD_EXTRACT_TIMESTAMP TRUE)
  message(STATUS "longspec: GoogleTest ${LONGSPEC_GOOGLETEST_VERSION} built from the release tarball")
endif()

# Only the gtest library: no gmock, nothing installed alongside longspec.
set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
FetchContent_MakeAvailable(googletest)
foreach(_t gtest gtest_main)
  if(NOT TARGET GTest::${_t})
    add_library(GTest::${_t} ALIAS ${_t})
  endif()
  # GoogleTest's own warnings are not ours to fix.
  target_compile_options(${_t} PRIVATE -w)
endforeach()
