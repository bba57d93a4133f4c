#!/usr/bin/env bash
# On the GPU machine, as bench/gpu/background_checks.sh's train.sh (after its SmolLM2 bench): the
# shallow small trees beside the packaged [4,4,4,2] for both real models, and tree="auto" with
# the packaged trees, in one chain (the plan's first item, bench/gpu/pending/README.md; the
# prediction to test: bench/results/tau_small_shapes_smollm2_cpu_2026-12-01.md); then the Qwen
# GPU tests (speculative == plain at 16k, logits against the CPU engine), which need its file.
# SKIP_SMOL=1 leaves SmolLM2 out (when the chain's own SmolLM2 bench already ran these trees:
# SMOL_BENCH_ARGS="--hf= --tree 4,4,4,2 --extra-trees 4,4,4;6,6,6;8,8,8;4,4 --phase-models= --no-plot").
# Needs: SmolLM2 joined by background_checks.sh; the Qwen GGUF's parts (qwen05.gguf) in
# /tmp/models/parts and the Qwen draft's model.safetensors in /tmp/src/models/... (it travels in
# the tree of the last call).
source /tmp/src/bench/gpu/device_env.sh
TREES="4,4,4;6,6,6;8,8,8;4,4"
if [ -z "${SKIP_SMOL:-}" ]; then
  timeout 600 python3 bench/bench_gpu.py --out-dir /tmp/bgout/bench_small_smollm2 --models smollm2-135m \
    --smollm2 "$SMOL" --work /tmp/longspec_bench --hf= --tree 4,4,4,2 --extra-trees "$TREES" --phase-models= \
    --no-plot > /tmp/bgout/bench_small_smollm2.log 2>&1
  log "small trees smollm2 exit $?"
fi
if [ -e /tmp/models/parts/qwen05.gguf.sha256 ]; then
  Q=$(joined_model qwen05.gguf)
  timeout 600 python3 bench/bench_gpu.py --out-dir /tmp/bgout/bench_small_qwen05 --models qwen2.5-coder-0.5b \
    --qwen05 "$Q" --contexts qwen2.5-coder-0.5b=16384,32768 --work /tmp/longspec_bench --hf= --tree 4,4,4,2 \
    --extra-trees "$TREES" --phase-models= --no-plot > /tmp/bgout/bench_small_qwen05.log 2>&1
  log "small trees qwen05 exit $?"
  LONGSPEC_QWEN05_GGUF="$Q" timeout 400 python3 -m pytest -q -s -m gpu -p no:cacheprovider \
    tests/python/test_gpu.py -k "qwen_coder_at_16k or track_the_cpu" > /tmp/bgout/pytest_qwen.log 2>&1
  log "pytest qwen exit $?: $(tail -1 /tmp/bgout/pytest_qwen.log)"
fi
