#!/usr/bin/env bash
# On this machine, before each device call that carries one model part: a device call carries the
# working tree plus the carried paths, at most 64 MiB in all, and the tree is ~45 MB of which the
# Qwen draft is 33 MB. This puts part N of the parts directory (with the sha256 files) into
# .models/part/ (carry [".models"]) and moves the Qwen draft out of the tree while parts travel;
# `--restore` puts it back (before the final run, which needs it).
#   bash bench/gpu/stage_local.sh N [PARTS_DIR]   # PARTS_DIR: parts of <= 50 MB (default /tmp/parts)
#   bash bench/gpu/stage_local.sh --restore
# On the device, each call: mkdir -p /tmp/models/parts && cp .models/part/* /tmp/models/parts/
set -euo pipefail
cd "$(dirname "$0")/../.."
draft=models/qwen2.5-coder-0.5b-instruct-longspec/model.safetensors
aside=/tmp/longspec_qwen_draft.safetensors
if [ "${1:-}" = "--restore" ]; then
  [ -e "$aside" ] && mv "$aside" "$draft"
  rm -rf .models/part
  git status --short -- "$draft"
  exit 0
fi
n=$1
parts=${2:-/tmp/parts}
[ -e "$draft" ] && mv "$draft" "$aside"
rm -rf .models/part && mkdir -p .models/part
part=$(ls "$parts"/*.part* | sort | sed -n "$((n + 1))p")
[ -n "$part" ] || { echo "no part $n in $parts"; exit 1; }
cp "$part" "$parts"/*.sha256 .models/part/
echo "staged $(basename "$part") ($(du -b "$part" | cut -f1) bytes); $(ls "$parts"/*.part* | wc -l) parts in all"
