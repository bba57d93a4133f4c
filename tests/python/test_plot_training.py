"""bench/plot_training.py: segments laid end to end, a held-out row logged twice counted once, a log
without held-out rows refused."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("plot_training", REPO / "bench" / "plot_training.py")
plot_training = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot_training)


def _log(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_segments_follow_each_other_and_a_repeated_evaluation_counts_once(tmp_path):
    a = _log(tmp_path / "a.jsonl", [{"step": 10, "loss": 3.0, "agree": 0.2},
                                    {"step": 20, "heldout_ce": 2.5, "heldout_agree": 0.3},
                                    {"step": 30, "loss": 2.0, "agree": 0.4},
                                    {"step": 30, "heldout_ce": 2.2, "heldout_agree": 0.35},
                                    {"step": 30, "heldout_ce": 2.2, "heldout_agree": 0.35}])
    b = _log(tmp_path / "b.jsonl", [{"step": 5, "heldout_ce": 2.1, "heldout_agree": 0.4},
                                    {"step": 8, "loss": 1.9, "agree": 0.45}])
    rows = plot_training.chain([("s1", a), ("s2", b)])
    held = [(r["segment"], r["step"], r["total_step"]) for r in rows if r["kind"] == "heldout"]
    assert held == [("s1", 20, 20), ("s1", 30, 30), ("s2", 5, 35)]
    assert [r["total_step"] for r in rows if r["kind"] == "train"] == [10, 30, 38]
    assert plot_training.table(rows)[2:] == ["| s1 | 20 (20) | 2.500 | 0.300 |", "| s1 | 30 (30) | 2.200 | 0.350 |",
                                             "| s2 | 5 (35) | 2.100 | 0.400 |"]
    assert plot_training.smooth([1.0, 3.0, 5.0], 2) == [1.0, 2.0, 4.0]


def test_the_report_is_written_and_a_log_without_heldout_rows_is_refused(tmp_path):
    good = _log(tmp_path / "g.jsonl", [{"step": 1, "loss": 2.0, "agree": 0.1},
                                       {"step": 2, "heldout_ce": 2.0, "heldout_agree": 0.2}])
    assert plot_training.main(["--name", "r", "--out", str(tmp_path / "out"), f"s={good}"]) == 0
    assert "| s | 2 (2) | 2.000 | 0.200 |" in (tmp_path / "out" / "r.md").read_text()
    bare = _log(tmp_path / "b.jsonl", [{"step": 1, "loss": 2.0}])
    with pytest.raises(SystemExit):
        plot_training.main(["--name", "r", "--out", str(tmp_path / "out"), f"s={bare}"])
    with pytest.raises(SystemExit):
        plot_training.main(["--name", "r", "--out", str(tmp_path / "out"), "no-label"])
