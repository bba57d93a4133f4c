SMOL_BENCH_ARGS="--hf= --tree 6,6,6 --extra-trees 5,5,5 --phase-models= --no-plot" bash /tmp/src/bench/gpu/query_tiles_ab.sh
