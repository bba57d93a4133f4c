#!/usr/bin/env bash
# On the GPU machine (run by bench/gpu/background_checks.sh as /tmp/bgout/train.sh, after its
# SmolLM2 bench, which ran with LONGSPEC_WIDE_ROWS_SPREAD at its default, off):
#   1. the kernel-level A/B of LONGSPEC_WIDE_ROWS_SPREAD (cuda_ops_bench attn-wide, 0 then 1) and
#      compute-sanitizer memcheck on its bits test;
#   2. bench_gpu.py on SmolLM2 again with the switch on (the same SMOL_BENCH_ARGS), so the two
#      runs give the same trees side by side on one card in one chain;
#   3. the SmolLM2 draft, an ablation at equal budget: the shipped draft continued on corpus B
#      (default sources + manuals) against corpus C (B + manuals2), both arms at once, their
#      held-out loss measured on the books (prose neither saw), then tau on the books.
# Needs: /tmp/data/{B,C,books} (data.py prepare outputs), SmolLM2 joined by background_checks.sh.
source /tmp/src/bench/gpu/device_env.sh
SHIPPED=models/smollm2-135m-instruct-longspec

for v in 0 1; do
  echo "== LONGSPEC_WIDE_ROWS_SPREAD=$v"
  LONGSPEC_WIDE_ROWS_SPREAD=$v /tmp/build_gpu/cuda_ops_bench attn-wide
done > /tmp/bgout/attn_wide.txt 2>&1
log "attn-wide A/B exit $?"
timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 /tmp/build_gpu/longspec_cuda_tests \
  --gtest_filter=CudaAttention.WideRowsSpreadGivesTheWalkersBits > /tmp/bgout/sanitizer_wide_rows.log 2>&1
log "memcheck wide rows exit $?: $(grep -E 'ERROR SUMMARY' /tmp/bgout/sanitizer_wide_rows.log | tr '\n' ' ')"

# shellcheck disable=SC2086 # SMOL_BENCH_ARGS is a list of options
LONGSPEC_WIDE_ROWS_SPREAD=1 timeout 900 python3 bench/bench_gpu.py --out-dir /tmp/bgout/bench_smollm2_spread \
  --models smollm2-135m --smollm2 "$SMOL" --work /tmp/longspec_bench ${SMOL_BENCH_ARGS:-} \
  > /tmp/bgout/bench_smollm2_spread.log 2>&1
log "bench smollm2 spread exit $?"

# Both arms measure held-out loss on the books (the same documents, prose neither trains on).
for d in B C; do cp /tmp/data/books/heldout_long.npz /tmp/data/$d/heldout_long.npz; done
mkdir -p /tmp/abl_out
log "ablation started"
OUT=/tmp/abl_out LONGSPEC_WIDE_ROWS_SPREAD=1 python3 bench/train/gpu_ablation.py --model "$SMOL" --runs /tmp/runs \
  --arm B=/tmp/data/B --arm C=/tmp/data/C --baseline shipped=$SHIPPED \
  --eval books=/tmp/data/books:$BOOKS16 --docs 16 --contexts 1024,4096,8128 \
  --trees "4,16,16,16,16;16,32,32,32,32" -- \
  --init $SHIPPED --stage1-steps 2000 --stage2-steps 600 --batch-size 16 --seq-len 1024 --long-len 8192 \
  --long-batch-size 2 --lr1 1.5e-4 --lr2 5e-5 --window 512 --seed 6 --distill 1.0 \
  --eval-every 500 --eval-seqs 8 --eval-len 4096 --save-every 1000 --time-limit 420 > /tmp/abl_out/driver.log 2>&1
log "ablation exit $?"
