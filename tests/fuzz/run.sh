#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and fuzzes each parser from the committed
# seed corpus. Without clang it says so and exits 0 (FUZZ_REQUIRE=1 makes that an error).
#   bash tests/fuzz/run.sh                    # CI: FUZZ_SECONDS (default 5) per parser
#   FUZZ_RUNS=1000000 bash tests/fuzz/run.sh  # a long run: that many executions per parser
# Env: FUZZ_TARGETS ("gguf safetensors json"), FUZZ_BUILD_DIR (build/fuzz), FUZZ_WORK_DIR (new
# inputs go there, never into the committed corpus; default a temp dir), FUZZ_SEED (-seed=,
# default 1), JOBS (build parallelism). Every run is one process on one core.
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGETS=${FUZZ_TARGETS:-gguf safetensors json}
BUILD_DIR=${FUZZ_BUILD_DIR:-build/fuzz}
JOBS=${JOBS:-$(nproc)}

CXX_BIN=${FUZZ_CXX:-$(command -v clang++ || true)}
C_BIN=${FUZZ_CC:-$(command -v clang || true)}
if [ -z "$CXX_BIN" ] || [ -z "$C_BIN" ]; then
  echo "tests/fuzz/run.sh: clang not found, fuzzing skipped"
  [ "${FUZZ_REQUIRE:-0}" = "1" ] && exit 1
  exit 0
fi

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_C_COMPILER="$C_BIN" -DLONGSPEC_CUDA=OFF \
      -DLONGSPEC_BUILD_TESTS=OFF -DLONGSPEC_BUILD_FUZZERS=ON >/dev/null
targets=()
for t in $TARGETS; do targets+=("fuzz_$t"); done
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${targets[@]}"

WORK=${FUZZ_WORK_DIR:-$(mktemp -d)}
if [ -n "${FUZZ_RUNS:-}" ]; then budget=(-runs="$FUZZ_RUNS"); else budget=(-max_total_time="${FUZZ_SECONDS:-5}"); fi
# -timeout: one input taking longer is a hang. -rss_limit_mb / -malloc_limit_mb: a parser that
# believes a size field and allocates for it is a bug, whatever the file claims.
limits=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536 -seed="${FUZZ_SEED:-1}")
status=0
for t in $TARGETS; do
  mkdir -p "$WORK/$t"
  echo "== fuzz_$t: ${budget[*]} ${limits[*]}, seeds tests/fuzz/corpus/$t ($(ls tests/fuzz/corpus/$t | wc -l) files)"
  start=$(date +%s)
  if ! "$BUILD_DIR/fuzz_$t" "${budget[@]}" "${limits[@]}" -print_final_stats=1 -artifact_prefix="$WORK/$t-" \
       "$WORK/$t" "tests/fuzz/corpus/$t" > "$WORK/fuzz_$t.log" 2>&1; then
    status=1
    echo "fuzz_$t FAILED (log and reproducer under $WORK):"
    tail -40 "$WORK/fuzz_$t.log"
  fi
  grep -E "^(Done|stat::)" "$WORK/fuzz_$t.log" || true
  echo "   $(( $(date +%s) - start )) s, log $WORK/fuzz_$t.log"
done
exit $status
