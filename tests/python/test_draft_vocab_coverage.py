"""bench/draft_vocab_coverage.py: coverage of held-out tokens by the reference's most frequent."""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import draft_vocab_coverage as dvc


def test_coverage_counts_held_out_tokens_inside_the_top_n():
    # Reference frequencies: 7 x3, 5 x2, 9 x2 (tie: the lower id ranks first), 1 x1.
    reference = [7, 7, 7, 5, 9, 5, 9, 1]
    held_out = [7, 9, 5, 2, 7, 1, 2, 2]
    cov = dvc.coverage(reference, held_out, sizes=(1, 2, 3, 4))
    assert cov == {1: 2 / 8, 2: 3 / 8, 3: 4 / 8, 4: 5 / 8}  # 2 never occurs in the reference


def test_coverage_of_nothing_held_out_is_zero_not_an_error():
    assert dvc.coverage([1, 2], [], sizes=(1,)) == {1: 0.0}
