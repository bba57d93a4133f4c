"""bench/report_tau.py: the acceptance-by-depth table from eval-draft's pooled histograms."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import report_tau


def test_depth_acceptance_is_the_conditional_share_at_each_depth():
    # 20 rounds: 10 accepted no draft token, 6 one, 4 both (a tree two deep).
    assert report_tau.depth_acceptance([0, 10, 6, 4]) == [0.5, 0.4]
    # Nobody reached depth 2: its acceptance is unknown, not zero.
    assert report_tau.depth_acceptance([0, 5, 0, 0]) == [0.0, None]


def test_report_writes_the_depth_table_for_rows_with_histograms(tmp_path):
    run = {"rows": [
        {"task": "continuation", "context": 1024, "tree": [16], "docs": 2, "tau": 1.75, "rounds": 8,
         "accepted_histogram": [0, 2, 6]},
        {"task": "continuation", "context": 1024, "tree": [1, 1], "docs": 2, "tau": 1.5, "rounds": 8},
    ]}
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(run))
    subprocess.run([sys.executable, str(REPO / "bench" / "report_tau.py"), "--name", "t", "--out", str(tmp_path),
                    f"draft={path}"], check=True, capture_output=True)
    md = (tmp_path / "t.md").read_text()
    assert "| draft | 1024 | 8 | 0.75 |" in md  # top-16 recall: 6 of 8 rounds
    assert "tree [1,1]: acceptance" not in md  # no histogram, no depth table
