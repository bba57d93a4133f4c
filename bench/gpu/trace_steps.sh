#!/usr/bin/env bash
# On the GPU machine: the timeline of plain decode steps (and, with PHASES, speculation rounds) of
# random-weight models of the given shapes, as they run (graph replays, overlaps and gaps), from
# the CUPTI tracer bench/gpu/kernel_trace.cc. Builds the Python package into /tmp/lsite first when
# it is not there (carried wheels in .whl/).
#   OUT=... bash bench/gpu/trace_steps.sh "qwen2.5-0.5b-shape 32768" "smollm2-135m-shape 8192"
# Writes $OUT/trace_<shape>_<context>_<phase>.txt (the timeline digest per graph) and
# $OUT/rounds_<shape>_<context>_<phase>.txt (everything in time order with the idle gaps: where a
# round waits for the host).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/longspec_out}
PHASES=${PHASES:-plain}
mkdir -p "$OUT"
source bench/gpu/package_site.sh
cuda=${CUDA_HOME:-/usr/local/cuda}
g++ -O2 -shared -fPIC -o /tmp/libkernel_trace.so bench/gpu/kernel_trace.cc -I"$cuda/include" \
  -L"$cuda/lib64" -L"$cuda/lib" -lcupti -Wl,-rpath,"$cuda/lib64:$cuda/lib" || exit 1
for what in "$@"; do
  set -- $what
  for phase in $PHASES; do
    csv="/tmp/trace_$1_$2_$phase.csv"
    rm -f "$csv"
    LD_PRELOAD=/tmp/libkernel_trace.so KERNEL_TRACE_CSV="$csv" timeout 300 \
      python3 bench/gpu/profile_round.py "$1" "$2" --phase "$phase" --trace ${TREE:+--tree "$TREE"} 2> "$csv.err"
    echo "== $1 $2 $phase (exit $?)"
    python3 bench/gpu/profile_round.py --timeline "$csv" > "$OUT/trace_$1_$2_$phase.txt"
    python3 bench/gpu/profile_round.py --rounds "$csv" > "$OUT/rounds_$1_$2_$phase.txt"
    head -30 "$OUT/trace_$1_$2_$phase.txt"
  done
done
