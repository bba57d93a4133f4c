#!/usr/bin/env bash
# On the GPU machine, after the SmolLM2 work of gpu_smol_wide_and_data.sh (its body appended to
# that /tmp/bgout/train.sh on 2026-12-01): tau of the shipped Qwen2.5-Coder-0.5B draft ("new", the six-source one)
# against the Python-only draft it replaced ("old") on the `repos` evaluation set (whole
# repositories of 20 Debian packages no training source reads; `data.py prepare --sources repos
# --heldout-fraction 1.0`) at 16k and 32k: the rows the CPU could not reach.
# Needs: /tmp/models/parts (qwen05.gguf parts), /tmp/data/repos, /tmp/drafts/{new,old}.
source /tmp/src/bench/gpu/device_env.sh
Q=$(joined_model qwen05.gguf)
for d in new old; do
  python3 -m longspec eval-draft --target "$Q" --draft /tmp/drafts/$d --data /tmp/data/repos \
    --contexts 16384,32768 --trees "4,16,16,16,16" --docs 12 --new-tokens 64 --device cuda \
    --out /tmp/bgout/tau_repos_qwen05_$d.json > /tmp/bgout/tau_repos_qwen05_$d.log 2>&1
  log "qwen repos tau $d exit $?: $(tail -3 /tmp/bgout/tau_repos_qwen05_$d.log | tr '\n' ' ')"
done
