#!/usr/bin/env bash
# The installed C++ package, as another project sees it: `cmake --install` the library built in
# BUILD_DIR into a temporary prefix, build examples/cpp_service against it with
# find_package(longspec), and run it on SmolLM2-135M with its packaged draft (speculative greedy
# must equal plain greedy; the program exits non-zero otherwise).
#   usage: tests/cpp_package/run.sh BUILD_DIR   (called by tests/run_all.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=$(realpath "${1:?usage: $0 BUILD_DIR}")
JOBS=${JOBS:-$(nproc)}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cmake --install "$BUILD_DIR" --prefix "$WORK/prefix" >/dev/null
targets=$(find "$WORK/prefix" -name longspecTargets.cmake)
test -n "$targets" || { echo "cpp_package: no longspecTargets.cmake installed" >&2; exit 1; }
# nlohmann/json is compiled into the library; its headers must not be asked of a user.
if grep -qi nlohmann "$WORK/prefix"/lib*/cmake/longspec/*.cmake "$WORK/prefix"/include/longspec/*.h; then
  echo "cpp_package: the installed package refers to nlohmann/json" >&2
  exit 1
fi

cmake -S examples/cpp_service -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$WORK/prefix" >/dev/null
cmake --build "$WORK/build" -j "$JOBS" >/dev/null

target=$(python3 -c "from longspec.models import smollm2_path; print(smollm2_path())")
"$WORK/build/cpp_service" --target "$target" --draft models/smollm2-135m-instruct-longspec \
    --max-new-tokens 16 --tree 2,2,2 --device cpu
echo "cpp_package: examples/cpp_service built against the installed package and ran"
