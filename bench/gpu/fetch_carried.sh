#!/usr/bin/env bash
# On this machine (it has the package indexes; the GPU machine has none): put what the GPU-machine
# scripts install from the working tree into the ignored folders a device call carries.
#   .deps/  GoogleTest (Debian package, unpacked by tests/run_gpu.sh) and the nlohmann/json wheel
#   .whl/   the Python package's build requirements and test tools, all pure-Python wheels, for
#           bench/gpu/package_site.sh and bench/train/gpu_setup.sh (the device's Python is 3.12)
# A fresh checkout has neither: run this once, then carry [".deps"] and/or [".whl"].
#   bash bench/gpu/fetch_carried.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .deps .whl
(cd .deps && apt-get download -q libgtest-dev 2>/dev/null && ls libgtest-dev_*.deb)
python3 -m pip download -q --no-deps nlohmann-json -d .deps
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
  scikit-build-core pybind11 nlohmann-json pathspec packaging gguf pytest pluggy iniconfig
du -sh .deps .whl
