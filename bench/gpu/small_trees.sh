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
qwen05_checks bench_small_qwen05 4,4,4,2 "$TREES"
