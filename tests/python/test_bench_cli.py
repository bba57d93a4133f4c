"""``longspec bench`` on the small random Qwen2 and a random draft: rows for every method at every
context that fit the shared benchmark schema (checked by shared/tools/bench_schema.py when that
checkout is beside this one), an honest note when HF transformers or a context is left out, and
``--plot`` either drawing a PNG or saying at once how to get matplotlib."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from longspec import cli, random_draft

SCHEMA_TOOL = Path(__file__).resolve().parents[3] / "shared" / "tools" / "bench_schema.py"


@pytest.fixture(scope="module")
def draft(random_qwen2_dir, tmp_path_factory):
    return random_draft(random_qwen2_dir, tmp_path_factory.mktemp("bench_draft"), seed=6, window=32)


def _bench(target, draft, *extra) -> list[str]:
    return ["bench", "--target", target, "--draft", draft, "--device", "cpu", "--new-tokens", "6", *extra]


def test_bench_rows_follow_the_shared_schema(random_qwen2_dir, draft, tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    assert cli.main(_bench(random_qwen2_dir, draft, "--contexts", "32,96,5000", "--out", str(out))) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["card"] and result["date"] and result["device"] == "cpu"
    got = {(r["context"], r["method"]) for r in result["rows"]}
    assert got == {(c, m) for c in (32, 96) for m in ("plain", "speculative", "hf_generate")}
    for row in result["rows"]:
        assert isinstance(row["context"], int) and row["ms_per_token"] > 0
        assert (row["tau"] is not None) == (row["method"] == "speculative")
        if row["method"] == "speculative":
            assert row["same_tokens_as_plain"] and row["tau"] >= 1.0
    assert any("context 5000 skipped" in n for n in result["notes"])
    assert "| 96 | hf_generate |" in printed and "context 5000 skipped" in printed
    if not SCHEMA_TOOL.is_file():
        pytest.skip(f"the shared schema checker is not beside this checkout ({SCHEMA_TOOL})")
    check = subprocess.run([sys.executable, str(SCHEMA_TOOL), str(out)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_bench_without_torch_says_hf_was_skipped(random_qwen2_dir, draft, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails as if it were missing
    out = tmp_path / "bench.json"
    assert cli.main(_bench(random_qwen2_dir, draft, "--contexts", "32", "--out", str(out))) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert {r["method"] for r in result["rows"]} == {"plain", "speculative"}
    assert any("HF transformers skipped" in n and "torch" in n for n in result["notes"])
    assert "HF transformers skipped" in printed


def test_bench_plot_without_matplotlib_fails_before_measuring(random_qwen2_dir, draft, tmp_path, capsys,
                                                              monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "bench.json"
    rc = cli.main(_bench(random_qwen2_dir, draft, "--contexts", "32", "--no-hf", "--out", str(out),
                         "--plot", str(tmp_path / "p.png")))
    assert rc == 2 and not out.exists()
    assert "pip install matplotlib" in capsys.readouterr().err


def test_bench_plot_draws_a_png(random_qwen2_dir, draft, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "speed.png"
    assert cli.main(_bench(random_qwen2_dir, draft, "--contexts", "32,64", "--no-hf", "--plot", str(png))) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 1000
    assert "--no-hf" in capsys.readouterr().out


def test_bench_rejects_bad_contexts(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--contexts", "1024,lots"])
    assert "contexts must be comma-separated positive integers" in capsys.readouterr().err


@pytest.mark.parametrize("tree, recorded", [("auto", "auto"), ("2,2", [2, 2])])
def test_bench_records_the_tree_it_ran(random_qwen2_dir, draft, tmp_path, tree, recorded):
    out = tmp_path / "bench.json"
    assert cli.main(_bench(random_qwen2_dir, draft, "--contexts", "32", "--no-hf", "--tree", tree,
                           "--out", str(out))) == 0
    assert json.loads(out.read_text())["tree"] == recorded  # "auto" once wrote ["a", "u", "t", "o"]
