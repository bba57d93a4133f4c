"""bench/bench_gpu.py and bench/gpu_report.py without a GPU: the tables, plot, JSON (against the
shared benchmark schema when that checkout is beside this one), --contexts parsing, and the speculative / phase-timing rows on a
fake engine (identical_to_plain, LONGSPEC_PHASE_TIMING set only for the phase runs)."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
SCHEMA_TOOL = REPO.parent / "shared" / "tools" / "bench_schema.py"
sys.path.insert(0, str(REPO / "bench"))
import bench_gpu
import gpu_report

ROWS = [
    {"model": "smollm2-135m", "context": 8192, "method": "floor", "ms_per_token": 0.104},
    {"model": "smollm2-135m", "context": 8192, "method": "plain", "ms_per_token": 1.0, "prefill_s": 0.07},
    {"model": "smollm2-135m", "context": 8192, "method": "speculative", "ms_per_token": 0.4, "tau": 2.9,
     "tree": [4, 16, 16, 16, 16], "identical_to_plain": True},
    {"model": "smollm2-135m", "context": 8192, "method": "speculative", "ms_per_token": 0.5, "tau": 2.5,
     "tree": "auto", "plain_rounds": 3, "rounds": 40, "identical_to_plain": True},
    {"model": "smollm2-135m", "context": 8192, "method": "hf_generate", "ms_per_token": 90.0, "prefill_s": 0.04},
    {"model": "smollm2-135m", "context": 2048, "method": "plain", "ms_per_token": 0.8, "prefill_s": 0.02},
    {"model": "smollm2-135m", "context": 2048, "method": "speculative", "ms_per_token": 0.5, "tau": 2.2,
     "tree": [4, 16, 16, 16, 16], "identical_to_plain": False, "first_difference": 17},
    {"model": "llama3-8b-shape", "context": 32768, "method": "plain", "ms_per_token": 6.6, "prefill_s": 5.5},
    {"model": "llama3-8b-shape", "context": 32768, "method": "draft_round", "ms_per_token": 1.2, "tau": None,
     "tree": [4, 16, 16, 16, 16], "tree_rows": 69, "decode_ms_per_round": 9.1, "draft": bench_gpu.UNTRAINED},
    {"model": "llama3-8b-shape", "context": 32768, "method": "verify_step", "ms_per_token": 7.5, "tau": None,
     "tree": [4, 16, 16, 16, 16], "tree_rows": 69, "decode_ms_per_round": 9.1, "draft": bench_gpu.UNTRAINED},
]


def test_render_has_the_decode_speculative_and_phase_tables():
    text = gpu_report.render("NVIDIA H200", "2026-12-01", ROWS, ["a note"])
    lines = text.splitlines()
    assert "| smollm2-135m | 8192 | 0.104 (0.00 s) |" not in text  # floor rows carry no prefill
    assert any(l.startswith("| smollm2-135m | 8192 | 0.104 | 90.000 (0.04 s) | - | 1.000 (0.07 s) | 9.62 |")
               for l in lines)
    spec = [l for l in lines if l.startswith("| smollm2-135m | 8192 | 1.000 | 0.400 (4,16,16,16,16)")]
    assert len(spec) == 1 and "| 2.50x | 2.90 | yes | 0.500 (3/40) | 2.00x | 90.000 |" in spec[0]
    assert any(l.startswith("| smollm2-135m | 2048 | 0.800 | 0.500") and "| NO |" in l for l in lines)
    phase = [l for l in lines if l.startswith("| llama3-8b-shape | 32768 | 4,16,16,16,16 (69)")]
    assert len(phase) == 1 and "| 1.200 | 7.500 | 6.600 | 9.100 |" in phase[0] and "untrained" in phase[0]
    assert lines[-1] == "note: a note"


def test_extra_trees_get_their_own_table_and_leave_the_main_speculative_row_alone():
    sweep = {"model": "smollm2-135m", "context": 8192, "method": "speculative", "ms_per_token": 0.35, "tau": 3.1,
             "tree": [16, 32, 32, 32, 32], "identical_to_plain": True, "tree_sweep": True}
    assert gpu_report.row_kind(sweep) == "speculative_sweep"
    assert gpu_report.row_kind(ROWS[2]) == "speculative" and gpu_report.row_kind(ROWS[3]) == "speculative_auto"
    lines = gpu_report.render("c", "2026-12-01", ROWS + [sweep], []).splitlines()
    # The main table still shows the --tree row, not the last explicit tree.
    assert any(l.startswith("| smollm2-135m | 8192 | 1.000 | 0.400 (4,16,16,16,16)") for l in lines)
    at = lines.index("Speculative decoding by tree shape (the --tree row and the --extra-trees rows of one run)")
    table = [l for l in lines[at:] if l.startswith("| smollm2-135m | 8192 |")]
    assert table == ["| smollm2-135m | 8192 | 4,16,16,16,16 (69) | 0.400 | 2.50x | 2.90 | yes |",
                     "| smollm2-135m | 8192 | 16,32,32,32,32 (145) | 0.350 | 2.86x | 3.10 | yes |"]
    # Without sweep rows there is no such table.
    assert not any(l.startswith("Speculative decoding by tree shape") for l in
                   gpu_report.render("c", "2026-12-01", ROWS, []).splitlines())


def test_draft_variants_get_their_own_table_and_leave_the_packaged_drafts_rows_alone():
    variant = {"model": "smollm2-135m", "context": 8192, "method": "speculative", "ms_per_token": 0.3, "tau": 2.8,
               "tree": [4, 16, 16, 16, 16], "identical_to_plain": True, "draft_variant": "head16k",
               "draft_head": 16384}
    assert gpu_report.row_kind(variant) == "speculative_variant"
    lines = gpu_report.render("c", "2026-12-01", ROWS + [variant, {**variant, "tree": "auto", "ms_per_token": 0.25}],
                              []).splitlines()
    assert any(l.startswith("| smollm2-135m | 8192 | 1.000 | 0.400 (4,16,16,16,16) | 2.50x | 2.90 |") for l in lines)
    at = next(i for i, l in enumerate(lines) if l.startswith("Speculative decoding with other drafts"))
    table = [l for l in lines[at:] if l.startswith("| smollm2-135m | 8192 |")]
    assert table == ["| smollm2-135m | 8192 | head16k, head over 16384 tokens | 4,16,16,16,16 | 0.300 | 3.33x | 2.80 | yes |",
                     "| smollm2-135m | 8192 | head16k, head over 16384 tokens | auto | 0.250 | 4.00x | 2.80 | yes |"]


def test_render_copes_with_missing_rows():
    text = gpu_report.render("c", "2026-12-01", [{"model": "m", "context": 1, "method": "speculative",
                                                "ms_per_token": 1.0, "tau": 1.5}], [])
    assert "| m | 1 | - | 1.000 | - | 1.50 | - | - | - | - |" in text
    assert gpu_report.render("c", "2026-12-01", [], []).count("\n") == 4


def test_results_json_follows_the_shared_schema(tmp_path):
    res = gpu_report.Results(str(tmp_path / "gpu_decode_2026-12-01"), {"card": "NVIDIA H200", "date": "2026-12-01"})
    for row in ROWS:
        res.add(row)
    res.note("done")
    data = json.loads((tmp_path / "gpu_decode_2026-12-01.json").read_text())
    assert data["rows"] == ROWS and data["notes"] == ["done"] and data["card"] == "NVIDIA H200"
    assert "Speculative decoding" in (tmp_path / "gpu_decode_2026-12-01.md").read_text()
    if not SCHEMA_TOOL.is_file():
        pytest.skip(f"{SCHEMA_TOOL} is not beside this checkout")
    spec = importlib.util.spec_from_file_location("bench_schema", SCHEMA_TOOL)
    schema = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(schema)
    problems, notes = schema.check(str(tmp_path / "gpu_decode_2026-12-01.json"))
    assert problems == []
    assert not any("method" in n for n in notes)


def test_plot_draws_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = gpu_report.plot(ROWS, str(tmp_path / "p.png"), "title")
    assert path and Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert gpu_report.plot([r for r in ROWS if r["method"] == "floor"], str(tmp_path / "q.png"), "t") is None
    assert not (tmp_path / "q.png").exists()


def test_parse_contexts():
    got = bench_gpu.parse_contexts(["smollm2-135m=4096,1024", "llama3-8b-shape=131072"])
    assert got["smollm2-135m"] == [1024, 4096] and got["llama3-8b-shape"] == [131072]
    assert got["qwen2.5-coder-0.5b"] == [8192, 16384, 32768]
    with pytest.raises(SystemExit):
        bench_gpu.parse_contexts(["nope=1"])


class FakeEngine:
    """generate() -> tokens and stats as the engine gives them; records the phase-timing variable."""

    def __init__(self, tokens):
        self.tokens, self.env = tokens, []

    def generate(self, ids, max_new_tokens, ignore_eos, speculative=None, tree=None, verify_nodes=None):
        self.env.append(os.environ.get(bench_gpu.PHASE_ENV))
        self.verify_nodes = verify_nodes
        spec = speculative is not False
        stats = {"decode_s": 0.0254, "new_tokens": max_new_tokens, "prefill_s": 0.5, "speculative": spec,
                 "rounds": 10 if spec else 0, "mean_accepted": 2.6 if spec else 0.0,
                 "accepted_histogram": [0, 1, 2, 7] if spec else [], "draft_s": 0.005, "verify_s": 0.015,
                 "other_s": 0.002}
        return SimpleNamespace(tokens=list(self.tokens[:max_new_tokens]), stats=stats)


def test_speculative_row_compares_with_plain():
    base = {"model": "m", "context": 100}
    plain = {"row": {"ms_per_token": 0.5}, "tokens": list(range(26))}
    row = bench_gpu.speculative_row(FakeEngine(range(26)), [1, 2], 26, base, [4, 16], plain)
    assert row["method"] == "speculative" and row["ms_per_token"] == 1.016 and row["tau"] == 2.6
    assert row["identical_to_plain"] is True and row["speedup_vs_plain"] == round(0.5 / 1.016, 3)
    assert row["tree"] == [4, 16] and "first_difference" not in row
    eng = FakeEngine(range(26))
    row = bench_gpu.speculative_row(eng, [1, 2], 26, base, [16, 32], plain, 20)  # --extra-trees 16,32@20
    assert eng.verify_nodes == 20 and row["verify_nodes"] == 20 and row["tree"] == [16, 32]
    row["tree_sweep"] = True
    assert "| m | 100 | 16,32@20 (49) |" in gpu_report.render("card", "date", [row], [])
    other = [0, 1, 2, 99] + list(range(4, 26))
    row = bench_gpu.speculative_row(FakeEngine(other), [1, 2], 26, base, "auto", plain)
    assert row["method"] == "speculative" and row["tree"] == "auto" and gpu_report.row_kind(row) == "speculative_auto"
    assert row["identical_to_plain"] is False and row["first_difference"] == 3


def test_phase_rows_set_the_variable_only_for_their_runs(monkeypatch):
    monkeypatch.delenv(bench_gpu.PHASE_ENV, raising=False)
    eng = FakeEngine(range(26))
    rows = bench_gpu.phase_rows(eng, [1], 26, {"model": "llama3-8b-shape", "context": 32768}, [4, 16], False)
    assert eng.env == ["1", "1"] and bench_gpu.PHASE_ENV not in os.environ
    draft, verify = rows
    assert (draft["method"], draft["ms_per_token"], verify["method"], verify["ms_per_token"]) == \
        ("draft_round", 0.5, "verify_step", 1.5)
    assert draft["tau"] is None and draft["tree_rows"] == 21 and draft["decode_ms_per_round"] == 2.54


LLAMA8B = dict(hidden_size=4096, intermediate_size=14336, num_layers=32, vocab_size=128256, num_heads=32,
               num_kv_heads=8, head_dim=128)


def test_verify_and_draft_round_floors_count_bytes_and_flops():
    # One row reads what a decode step reads; 69 rows at 32k add the attention's FLOPs (47 us a
    # layer at 790 TFLOP/s, above its 30 us of K/V bytes), the Linears still bound by bytes.
    assert bench_gpu.verify_floor_ms(LLAMA8B, 32768, 1) == pytest.approx(bench_gpu.floor_ms(LLAMA8B, 32768))
    attention = 32 * 4 * 69 * 4096 * 32768 / bench_gpu.PEAK_FLOPS * 1e3
    linear = bench_gpu.floor_ms(LLAMA8B, 0)
    assert bench_gpu.verify_floor_ms(LLAMA8B, 32768, 69) == pytest.approx(linear + attention)
    # A level reads the draft (0.50 GB at this shape), the LM head (1.05 GB) and the last layer's
    # K/V (134 MB at 32k): five levels ~1.91 ms.
    draft_bytes = 2 * ((4096 + 2 * 1024) * 4096 + 3 * 4096 * 4096 + 3 * 14336 * 4096)
    assert bench_gpu.draft_round_floor_ms(LLAMA8B, draft_bytes, 32768, 5) == pytest.approx(1.9097, abs=1e-3)


def test_a_draft_with_its_own_head_has_a_floor_without_the_targets_head(monkeypatch, tmp_path):
    # A subset head (head_tokens.json) is part of the draft's own bytes: the floor drops the
    # target's 1.05 GB head per level, the row and the table say how many tokens the head holds.
    own = 2 * 32768 * 4096
    draft_bytes = 2 * ((4096 + 2 * 1024) * 4096 + 3 * 4096 * 4096 + 3 * 14336 * 4096) + own
    whole = bench_gpu.draft_round_floor_ms(LLAMA8B, draft_bytes - own, 32768, 5)
    headed = bench_gpu.draft_round_floor_ms(LLAMA8B, draft_bytes, 32768, 5, own_head=True)
    assert whole - headed == pytest.approx(5 * 2 * (128256 - 32768) * 4096 / bench_gpu.READ_BW * 1e3)
    (tmp_path / "head_tokens.json").write_text(json.dumps({"tokens": list(range(32768))}))
    assert bench_gpu.draft_head_size(str(tmp_path)) == 32768 and bench_gpu.draft_head_size(None) is None
    monkeypatch.delenv(bench_gpu.PHASE_ENV, raising=False)
    eng = FakeEngine(range(26))
    eng.target_info, eng.draft_info, eng.draft_path = LLAMA8B, {"parameter_bytes": draft_bytes}, str(tmp_path)
    draft, _ = bench_gpu.phase_rows(eng, [1], 26, {"model": "llama3-8b-shape", "context": 32768}, [4, 16], False)
    assert draft["draft_head"] == 32768
    assert draft["floor_ms"] == round(bench_gpu.draft_round_floor_ms(LLAMA8B, draft_bytes, 32768, 2, True), 4)
    text = gpu_report.render("c", "2026-12-01", [draft], [])
    assert "head over 32768 tokens" in text


def test_phase_rows_carry_floors_when_the_engine_describes_its_models(monkeypatch):
    monkeypatch.delenv(bench_gpu.PHASE_ENV, raising=False)
    eng = FakeEngine(range(26))
    eng.target_info, eng.draft_info = LLAMA8B, {"parameter_bytes": 503316480}
    draft, verify = bench_gpu.phase_rows(eng, [1], 26, {"model": "llama3-8b-shape", "context": 32768}, [4, 16], False)
    assert verify["floor_ms"] == round(bench_gpu.verify_floor_ms(LLAMA8B, 32768, 21), 4)
    assert draft["floor_ms"] == round(bench_gpu.draft_round_floor_ms(LLAMA8B, 503316480, 32768, 2), 4)
    text = gpu_report.render("c", "2026-12-01", [draft, verify], [])
    assert f"| 0.500 ({draft['floor_ms']:.3f}) | 1.500 ({verify['floor_ms']:.3f}) |" in text


def test_bench_gpu_runs_end_to_end_on_the_cpu_with_a_sweep_and_a_draft_variant(smollm2_gguf, tmp_path):
    """bench_gpu.py --device cpu on SmolLM2 at a short context: plain, the --tree row, a swept tree
    and two draft variants (each with the --tree and the swept tree) (the packaged draft without its subset head; the target's own GGUF as a
    classic two-model draft), each speculative row equal to plain greedy; the variants' rows carry
    their labels and no head size."""
    import shutil
    import subprocess

    full = tmp_path / "full_head"
    shutil.copytree(REPO / "models" / "smollm2-135m-instruct-longspec", full)
    (full / "head_tokens.json").unlink(missing_ok=True)
    out = subprocess.run([sys.executable, str(REPO / "bench" / "bench_gpu.py"), "--device", "cpu", "--models",
                          "smollm2-135m", "--smollm2", smollm2_gguf, "--contexts", "smollm2-135m=200",
                          "--new-tokens", "6", "--hf=", "--no-auto", "--no-plot", "--tree", "2,2",
                          "--extra-trees", "1,1,1", "--draft-variant", f"smollm2-135m:full={full}",
                          "--draft-variant", f"smollm2-135m:classic={smollm2_gguf}",
                          "--out-dir", str(tmp_path), "--date", "2026-12-01"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads((tmp_path / "gpu_decode_2026-12-01.json").read_text())["rows"]
    kinds = sorted((gpu_report.row_kind(r), str(r.get("tree"))) for r in rows)
    assert kinds == [("floor", "None"), ("plain", "None"), ("speculative", "[2, 2]"),
                     ("speculative_sweep", "[1, 1, 1]"), ("speculative_variant", "[1, 1, 1]"),
                     ("speculative_variant", "[1, 1, 1]"), ("speculative_variant", "[2, 2]"),
                     ("speculative_variant", "[2, 2]")]
    spec = [r for r in rows if r["method"] == "speculative"]
    assert all(r["identical_to_plain"] for r in spec)
    assert all(r.get("tree_sweep") for r in spec if r["tree"] == [1, 1, 1])
    variants = {r["draft_variant"]: r for r in spec if r.get("draft_variant") and r["tree"] == [2, 2]}
    assert set(variants) == {"full", "classic"} and all(r["draft_head"] is None for r in variants.values())
    # The target drafting for itself: every round accepts its whole depth (2 + the bonus token)
    # but the last, which the 5 tokens after the prefill's cut short.
    assert variants["classic"]["tau"] == 2.5 and variants["classic"]["rounds"] == 2


def test_commit_names_head_only_when_the_files_are_heads(tmp_path, monkeypatch):
    """The JSON's commit: HEAD when the files are HEAD's, HEAD+modified otherwise (the GPU machine's
    copy of the tree once carried a stale .git and named a commit it did not run); source_tree,
    git's tree hash of the files as they are, finds the commit that had them."""
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("no git")

    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    monkeypatch.setattr(bench_gpu, "REPO", str(tmp_path))
    tree = bench_gpu.source_tree()
    assert tree == git("rev-parse", "HEAD^{tree}")
    assert bench_gpu.git_commit(tree) == git("rev-parse", "--short", "HEAD")
    (tmp_path / "a.txt").write_text("two\n")
    changed = bench_gpu.source_tree()
    assert changed != tree
    assert bench_gpu.git_commit(changed) == git("rev-parse", "--short", "HEAD") + "+modified"
    # The real index is untouched: the scratch index is the only one written.
    assert git("status", "--porcelain") == "M a.txt"
