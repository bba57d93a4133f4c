#!/usr/bin/env bash
# On the GPU machine: one A/B of the backend's environment switches in one call. Runs the decode
# timelines (trace_steps.sh) and the GEMM table (cuda_ops_bench gemm-verify, which holds the
# 69-row verify shapes the timelines do not exercise) with every switch at its default, then
# with each switch of SWITCHES set to 0 in turn, and prints one table of step spans and GEMM
# times side by side. Needs the C++ build in $BUILD (tests/run_gpu.sh) for the GEMM table; the
# Python package is built by trace_steps.sh when missing.
#   SWITCHES="LONGSPEC_FINISH_GROUP_WARPS LONGSPEC_GEMM_RING" OUT=... BUILD=/tmp/build_gpu \
#     bash bench/gpu/ab_switches.sh "smollm2-135m-shape 8192" "qwen2.5-1.5b-shape 32768"
# Writes $OUT/ab_<setting>/ (timeline digests, gemm_verify.txt) and $OUT/ab_summary.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/longspec_out}
BUILD=${BUILD:-/tmp/build_gpu}
SWITCHES=${SWITCHES:-}
settings="default"
for s in $SWITCHES; do settings="$settings $s"; done
for setting in $settings; do
  dir="$OUT/ab_$setting"
  mkdir -p "$dir"
  envs=()
  [ "$setting" != default ] && envs=("$setting=0")
  env "${envs[@]}" OUT="$dir" bash bench/gpu/trace_steps.sh "$@" > "$dir/trace_steps.log" 2>&1
  if [ -x "$BUILD/cuda_ops_bench" ]; then
    env "${envs[@]}" "$BUILD/cuda_ops_bench" gemm-verify > "$dir/gemm_verify.txt" 2>&1
  fi
done
python3 - "$OUT" "$settings" "$@" <<'PY' | tee "$OUT/ab_summary.txt"
import re, sys
out, settings, shapes = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
def read(path):
    try:
        return open(path).read()
    except OSError:
        return ""
print("| what | " + " | ".join(settings) + " |")
print("| --- |" + " --- |" * len(settings))
for shape in shapes:
    name, ctx = shape.split()
    cells = []
    for st in settings:
        m = re.search(r"step span ([0-9.]+)", read(f"{out}/ab_{st}/trace_{name}_{ctx}_plain.txt"))
        cells.append(m.group(1) if m else "-")
    print(f"| step span us, {name} {ctx} | " + " | ".join(cells) + " |")
tables = {}
for st in settings:
    rows = {}
    for line in read(f"{out}/ab_{st}/gemm_verify.txt").splitlines():
        f = line.split()
        if len(f) >= 7 and re.fullmatch(r"[0-9]+x[0-9]+", f[2]) and f[3].isdigit():
            rows[" ".join(f[:4])] = f[4]
    tables[st] = rows
for key in tables.get(settings[0], {}):
    print(f"| GEMM us, {key} rows | " + " | ".join(tables[st].get(key, "-") for st in settings) + " |")
PY
