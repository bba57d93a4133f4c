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


def test_rounds_digest_orders_segments_with_their_idle_gaps_and_host_calls(tmp_path, capsys):
    """--rounds: everything in time order from the first graph replay (the prefill's eager kernels
    before it left out), each graph replay one segment, copies and eager kernels their own, the
    idle time before each, and host API calls (grid "host") on the same clock, not counted as
    device time; --timeline ignores the host rows."""
    rows = [
        "0,5000,0,1,64x1x1,128x1x1,prefill_kernel",  # before the first graph: left out
        "10000,11000,7,50,1x1x1,32x1x1,longspec::cuda::level_a",
        "11500,12000,7,50,1x1x1,32x1x1,longspec::cuda::level_b",  # same replay: one segment of 2
        "12500,15000,0,51,host,host,api cudaGraphLaunch_v10000",
        "15000,15800,0,52,0x0x0,0x0x0,memcpy HtoD 1172 B",  # 3 us idle before it
        "16000,20000,8,53,8x1x1,128x1x1,longspec::cuda::verify",
        "20000,21000,7,54,1x1x1,32x1x1,longspec::cuda::level_a",  # a second replay of graph 7
    ]
    path = tmp_path / "whole.trace"
    path.write_text("\n".join(rows) + "\n")
    profile_round.round_timeline(str(path))
    out = capsys.readouterr().out
    assert "prefill_kernel" not in out and "the 1 segments before the first graph replay" in out
    lines = out.splitlines()
    segs = [line for line in lines if "graph 7" in line or "graph 8" in line or "memcpy" in line]
    assert len(segs) == 4  # graph 7 (2 kernels), the copy, graph 8, graph 7 again
    assert segs[0].split()[3] == "2" and "graph 7: level_a" in segs[0]
    host = [line for line in lines if "api cudaGraphLaunch" in line]
    assert len(host) == 1 and host[0].split()[1] == "host" and host[0].split()[2] == "2.5"
    memcpy = next(line for line in lines if "memcpy" in line)
    assert memcpy.split()[1] == "3.0"  # idle since graph 7 ended at 12.0 us
    # 11 us from the first replay's start to the last end: busy 2.0 + 0.8 + 4.0 + 1.0, idle 3.0 + 0.2.
    assert lines[-1] == "total 11.0 us: busy 7.8, idle 3.2"
    profile_round.timeline(str(path))
    assert "cudaGraphLaunch" not in capsys.readouterr().out


def test_exposed_time_is_what_earlier_kernels_leave_uncovered_and_sums_to_the_span(tmp_path, capsys):
    """A kernel launched early (programmatic dependent launch) overlaps the one before it: only
    its part past that kernel's end is exposed; after an idle gap a kernel is exposed whole; the
    exposed times and the idle time add up to the replay's span."""
    ks = [
        (0, 4000, "qkv", "g"),       # exposed 4000
        (1000, 9000, "attn", "g"),   # starts inside qkv: exposed 9000 - 4000 = 5000
        (2000, 8000, "early", "g"),  # wholly inside attn: exposed 0
        (10000, 12000, "o", "g"),    # 1000 idle before it: exposed whole, 2000
    ]
    exposed, idle = profile_round.exposed_times(ks)
    assert exposed == [4000, 5000, 0, 2000] and idle == 1000
    assert sum(exposed) + idle == ks[-1][1] - ks[0][0]
    # In the digest: two replays of that graph; the table is ordered by exposed time per step.
    rows, t0 = [], 0
    for rep in range(2):
        for s, e, name, grid in ks:
            rows.append(f"{t0 + s},{t0 + e},5,{300 + rep},1x1x1,32x1x1,{name}")
        t0 += 20000
    path = tmp_path / "step.trace"
    path.write_text("\n".join(rows) + "\n")
    profile_round.timeline(str(path))
    out = capsys.readouterr().out
    assert "with 1.0 us idle a step" in out
    table = out[out.index("exposed time by kernel"):out.index("# the last replay")]
    names = [line.split()[-2] for line in table.splitlines()[2:] if line.strip()]
    assert names == ["attn", "qkv", "o", "early"]
    assert "    1.00    8.00    5.00  attn  1x1x1" in out
