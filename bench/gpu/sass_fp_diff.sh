#!/usr/bin/env bash
# On this machine (no GPU): whether a CUDA change leaves kernels' arithmetic alone. Compiles one
# .cu file of two source trees for sm_90a and compares, for every kernel whose name matches REGEX,
# the cubin section (byte-identical or not) and the sequence of floating-point, tensor-core and
# shuffle instructions (FFMA, FMUL, FADD, MUFU, FMNMX, FSETP, SHFL, HMMA; register names and
# .reuse hints ignored) and the counts of barriers and async copies. RENAME (a sed expression)
# maps the new tree's kernel names onto the old's where a template parameter was added (e.g.
# RENAME='s/ELi4EEEv/EEEv/' for a defaulted int parameter at 4). Equal sequences mean the same
# operations on the same values in the same order: evidence for a change that has not run on a
# card yet, not a substitute for its GPU test.
#   bash bench/gpu/sass_fp_diff.sh OLD_TREE NEW_TREE cuda/attention.cu 'attention_finish'
#   RENAME='s/ELi4EEEv/EEEv/' bash bench/gpu/sass_fp_diff.sh OLD NEW cuda/gemm.cu 'bulk_kernel[^ ]*(Lb[01]|Li4)EEEv'
# Needs cuobjdump: the CUDA toolkit's, or the nvidia-cuda-cuobjdump wheel's (CUOBJDUMP=path;
# `pip download --no-deps nvidia-cuda-cuobjdump` and unzip it).
set -euo pipefail
old=$1 new=$2 src=$3 regex=$4
nvcc=${NVCC:-nvcc}
cuobjdump=${CUOBJDUMP:-cuobjdump}
command -v "$cuobjdump" > /dev/null || { echo "no cuobjdump (set CUOBJDUMP)"; exit 2; }
json_inc=$(python3 -c "import nlohmann_json; print(nlohmann_json.get_include())")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for side in old new; do
  tree=${!side}
  (cd "$tree" && "$nvcc" -O3 -DNDEBUG -arch=sm_90a -cubin --expt-relaxed-constexpr -diag-suppress=2810 \
    -Xcompiler=-ffp-contract=off -std=c++17 -DLONGSPEC_WITH_CUDA=1 -Icpp/include -Icpp/src -Icuda \
    -isystem="$json_inc" "$src" -o "$work/$side.cubin")
  rename='s/^$//'
  [ "$side" = new ] && rename=${RENAME:-$rename}
  "$cuobjdump" -sass "$work/$side.cubin" | awk -v re="$regex" '/Function : /{p = ($0 ~ re)} p' |
    sed -E 's@/\*[0-9a-f]{4,}\*/@@; s@/\* 0x[0-9a-f]+ \*/@@g; s/ +/ /g' | sed -E "/Function :/$rename" > "$work/$side.sass"
  { grep -E "Function :|FFMA|FMUL|FADD|MUFU|FMNMX|FSETP|SHFL|HMMA" "$work/$side.sass" || true; } |
    sed -E 's/\.reuse//g; s/UR[0-9]+/UR/g; s/R[0-9]+/R/g; s/P[0-9]/P/g' > "$work/$side.fp"
  { grep -oE "(BAR|LDGSTS|DEPBAR|SYNCS)[A-Z0-9_.]*" "$work/$side.sass" || true; } | sort | uniq -c > "$work/$side.sync"
done
kernels=$(grep -c "Function :" "$work/new.sass" || true)
echo "$kernels kernels match '$regex' in $src"
[ "$kernels" -gt 0 ] || exit 2
if cmp -s "$work/old.sass" "$work/new.sass"; then
  echo "SASS identical"
  exit 0
fi
status=0
if diff -q "$work/old.fp" "$work/new.fp" > /dev/null; then
  echo "floating-point and shuffle instruction sequence: the same ($(grep -vc 'Function :' "$work/new.fp") instructions)"
else
  echo "floating-point and shuffle instruction sequence: DIFFERS"
  diff "$work/old.fp" "$work/new.fp" | head -20
  status=1
fi
if diff -q "$work/old.sync" "$work/new.sync" > /dev/null; then
  echo "barrier and async-copy counts: the same"
else
  echo "barrier and async-copy counts: DIFFER"
  diff "$work/old.sync" "$work/new.sync"
  status=1
fi
echo "other instructions: $(diff "$work/old.sass" "$work/new.sass" | grep -c '^[<>]') lines differ (scheduling, integer arithmetic, moves)"
exit $status
