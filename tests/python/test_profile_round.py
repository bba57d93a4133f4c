"""bench/gpu/profile_round.py --timeline: a tracer CSV (start, end, graph, correlation, grid,
block, name) digested graph replay by graph replay, one section per graph size."""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench" / "gpu"))
import profile_round


def _trace(path: Path) -> None:
    # Three replays of a 2-kernel graph (a draft level), two of a 3-kernel graph (the verification),
    # and one kernel launched outside any graph, which is no step.
    rows, t = [], 0
    for rep in range(3):
        for k in range(2):
            rows.append(f"{t},{t + 1000},11,{100 + rep},1x1x1,32x1x1,draft_kernel_{k}")
            t += 1500
    for rep in range(2):
        for k in range(3):
            rows.append(f"{t},{t + 4000},12,{200 + rep},8x1x1,128x1x1,verify_kernel_{k}")
            t += 5000
    rows.append(f"{t},{t + 9000},0,999,1x1x1,32x1x1,eager_kernel")
    path.write_text("\n".join(rows) + "\n")


def test_every_graph_of_a_round_gets_its_own_section_most_frequent_first(tmp_path, capsys):
    path = tmp_path / "round.trace"
    _trace(path)
    profile_round.timeline(str(path))
    out = capsys.readouterr().out
    sections = [line for line in out.splitlines() if line.startswith("## ")]
    assert len(sections) == 2
    assert "3 replays of 2 kernels" in sections[0] and "2 replays of 3 kernels" in sections[1]
    spans = [line for line in out.splitlines() if line.startswith("step span")]
    # A draft replay spans 1500 + 1000 ns, a verification replay 2 * 5000 + 4000 ns.
    assert spans[0].startswith("step span 2.5 us") and spans[1].startswith("step span 14.0 us")
    assert "eager_kernel" not in out
    assert out.index("draft_kernel_0") < out.index("verify_kernel_0")
