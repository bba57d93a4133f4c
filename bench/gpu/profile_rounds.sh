#!/usr/bin/env bash
# On the GPU machine: kernel-by-kernel times of plain decode steps and one speculation round
# (bench/gpu/profile_round.py under Nsight Compute) for random-weight models of the given shapes.
# Builds the Python package into /tmp/lsite first when it is not there (carried wheels in .whl/).
#   OUT=... bash bench/gpu/profile_rounds.sh "qwen2.5-0.5b-shape 32768" "smollm2-135m-shape 8192"
# Writes $OUT/round_<shape>_<context>_<phase>.txt (the digest; the raw CSVs in $OUT/round_csv.tgz).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/longspec_out}
mkdir -p "$OUT"
source bench/gpu/package_site.sh
for what in "$@"; do
  set -- $what
  for phase in plain speculative; do
    csv="/tmp/round_csv/round_$1_$2_$phase.csv"
    mkdir -p /tmp/round_csv
    # Clocks as in normal use (Nsight would lock them to base otherwise).
    timeout 300 ncu --clock-control none --profile-from-start off --metrics gpu__time_duration.sum --csv --print-units base \
      python3 bench/gpu/profile_round.py "$1" "$2" --phase "$phase" ${TREE:+--tree "$TREE"} > "$csv" 2> "$csv.err"
    echo "== $1 $2 $phase (exit $?)"
    python3 bench/gpu/profile_round.py --digest "$csv" > "$OUT/round_$1_$2_$phase.txt"
    head -45 "$OUT/round_$1_$2_$phase.txt"
  done
done
tar czf "$OUT/round_csv.tgz" -C /tmp round_csv
