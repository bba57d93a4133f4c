#!/usr/bin/env bash
# On the GPU machine (no network): install the carried build wheels, build longspec with its CUDA
# part, and stage the carried data. Idempotent while the machine stays warm.
# Usage (repo root): bash bench/train/gpu_setup.sh
set -euo pipefail
export PYTHONPATH=/tmp/site:/tmp/lsite${PYTHONPATH:+:$PYTHONPATH}
if [ ! -d /tmp/site/scikit_build_core ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
if ! ls /tmp/lsite/longspec/_C*.so >/dev/null 2>&1; then
  t0=$(date +%s)
  CMAKE_BUILD_PARALLEL_LEVEL=16 LONGSPEC_CUDA=ON python3 -m pip install -q --no-build-isolation --no-deps \
      --target /tmp/lsite . 2>&1 | tail -20
  echo "longspec built in $(( $(date +%s) - t0 )) s"
fi
if [ -d .gpudata ]; then mkdir -p /tmp/data && cp -r .gpudata/* /tmp/data/; fi
if [ -d .models ]; then
  mkdir -p /tmp/models/parts
  find .models -name '*.part*' -exec cp {} /tmp/models/parts/ \;
  find .models -name '*.sha256' -exec cp {} /tmp/models/parts/ \;
  find .models -name 'parts.py' -exec cp {} /tmp/models/ \;
fi
python3 -c "import longspec, torch; print('longspec', longspec.__version__, 'cuda', longspec.cuda_available(), torch.cuda.get_device_name(0))"
