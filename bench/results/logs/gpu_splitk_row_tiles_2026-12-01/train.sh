BUILD=/tmp/build_gpu OUT=/tmp/bgout bash /tmp/src/bench/gpu/row_tiles_check.sh > /tmp/bgout/row_tiles_check.txt 2>&1
SWITCH=LONGSPEC_SPLITK_ROW_TILES SMOL_BENCH_ARGS="--hf= --tree 6,6,6 --extra-trees 5,5,5;8,8,8;6,6,6,6 --phase-models= --no-plot" bash /tmp/src/bench/gpu/bracket_ab.sh
