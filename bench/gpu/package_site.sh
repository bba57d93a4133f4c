# Sourced by the GPU-machine scripts (from the repository root, with OUT set): the Python package
# with its CUDA part in /tmp/lsite, built once per warm machine from the carried wheels in .whl/,
# and PYTHONPATH pointing at it.
if [ ! -e /tmp/lsite/longspec ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  PYTHONPATH=/tmp/site CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) LONGSPEC_CUDA=ON LONGSPEC_CUDA_ARCHITECTURES=90a \
    python3 -m pip install -q --no-build-isolation --no-deps --target /tmp/lsite . > "$OUT/pip_build.log" 2>&1 \
    || { tail -30 "$OUT/pip_build.log"; exit 1; }
fi
export PYTHONPATH=/tmp/lsite:/tmp/site PYTHONUNBUFFERED=1
