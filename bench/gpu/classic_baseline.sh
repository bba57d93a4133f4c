#!/usr/bin/env bash
# On the GPU machine, as background_checks.sh's train.sh (or after it): issue 12's baseline timed,
# Qwen2.5-Coder-1.5B with Qwen2.5-Coder-0.5B as a classic two-model draft (its own KV cache, its
# tree grown on the device), against the 1.5B's plain decoding, at 16k and 32k, trees [4,4] (and
# auto) and [4,4,4,2]. Needs the 1.5B GGUF's 21 parts (.models/w00..w20, ~52 MiB each: both drafts
# out of the tree while they travel) and the 0.5B's (.models/q0..q9) in /tmp/models/parts.
#   bash /tmp/src/bench/gpu/classic_baseline.sh
source /tmp/src/bench/gpu/device_env.sh
q15=$(joined_model qwen15.gguf)
q05=$(joined_model qwen05.gguf)
[ -e "$q15" ] && [ -e "$q05" ] || { log "classic baseline: a model's parts are missing"; exit 1; }
log "classic baseline started"
# A variant's rows take --tree (and auto): one run per tree, auto with the first.
for tree in 4,4 4,4,4,2; do
  auto=()
  [ "$tree" = 4,4 ] || auto=(--no-auto)
  timeout 900 python3 bench/bench_gpu.py --out-dir "/tmp/bgout/bench_qwen15_classic_$tree" \
    --models qwen2.5-coder-1.5b --qwen15 "$q15" --contexts qwen2.5-coder-1.5b=16384,32768 \
    --work /tmp/longspec_bench --hf= --tree "$tree" "${auto[@]}" --phase-models= --no-plot \
    --draft-variant "qwen2.5-coder-1.5b:classic-0.5b=$q05" > "/tmp/bgout/bench_qwen15_classic_$tree.log" 2>&1
  log "classic baseline tree $tree exit $?"
done
