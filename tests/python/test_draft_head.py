"""A draft whose LM head covers only a subset of the vocabulary (head_tokens.json; FR-Spec's
frequency-ranked head): the draft proposes only those tokens, speculative greedy output stays
plain greedy's, a subset holding every token changes nothing at all, and bad subsets are clear
errors. `longspec draft-head` picks the subset from a corpus."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from longspec import Engine, random_draft, restrict_draft_head

VOCAB = 512
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.fixture(scope="module")
def target_dir(tmp_path_factory):
    """A random Qwen2 whose head_dim (64) the CUDA backend's attention takes."""
    pytest.importorskip("torch")
    from conftest import make_random_qwen2

    return make_random_qwen2(str(tmp_path_factory.mktemp("head_target")), vocab=VOCAB, hidden=256, heads=4,
                             kv_heads=2, inter=256, shard=False)


@pytest.fixture(scope="module")
def draft(target_dir, tmp_path_factory):
    return random_draft(target_dir, tmp_path_factory.mktemp("head_draft") / "d", seed=8, window=32)


def _prompt(n=200, seed=0):
    return np.random.default_rng(seed).integers(0, VOCAB, n).tolist()


@pytest.mark.parametrize("device", DEVICES)
def test_a_head_over_every_token_changes_nothing(target_dir, draft, tmp_path, device):
    # The subset head is built from the target file's rows: over all of them it must grow the very
    # same trees (same rounds and acceptance), not only emit the same tokens.
    whole = restrict_draft_head(draft, tmp_path / "all", range(VOCAB))
    a = Engine(target_dir, draft=draft, device=device, tokenizer=False)
    b = Engine(target_dir, draft=whole, device=device, tokenizer=False)
    for tree in ([4, 16, 16], [2, 2, 2, 2]):
        x = a.generate(_prompt(), max_new_tokens=24, ignore_eos=True, tree=tree)
        y = b.generate(_prompt(), max_new_tokens=24, ignore_eos=True, tree=tree)
        assert x.tokens == y.tokens
        assert x.stats["rounds"] == y.stats["rounds"]
        assert x.stats["accepted_histogram"] == y.stats["accepted_histogram"]


@pytest.mark.parametrize("device", DEVICES)
def test_a_subset_head_keeps_greedy_output_and_limits_the_tree(target_dir, draft, tmp_path, device):
    subset = np.random.default_rng(3).choice(VOCAB, 40, replace=False)
    small = restrict_draft_head(draft, tmp_path / "small", subset.tolist())
    eng = Engine(target_dir, draft=small, device=device, tokenizer=False)
    for seed in range(3):
        plain = eng.generate(_prompt(seed=seed), max_new_tokens=20, ignore_eos=True, speculative=False)
        spec = eng.generate(_prompt(seed=seed), max_new_tokens=20, ignore_eos=True, tree=[4, 16, 16])
        assert spec.tokens == plain.tokens and spec.stats["speculative"]
    with pytest.raises(ValueError, match="40 tokens the draft can propose"):
        eng.generate(_prompt(), max_new_tokens=4, tree=[41])
    assert eng.generate(_prompt(), max_new_tokens=4, ignore_eos=True, tree=[40]).tokens  # still usable


@pytest.mark.parametrize("content, message", [
    ({"tokens": [3, 2]}, "strictly ascending"),
    ({"tokens": [1, VOCAB]}, "integer in"),
    ({"tokens": []}, "ascending token ids"),
    ({"ids": [1, 2]}, "ascending token ids"),
])
def test_a_bad_head_tokens_file_is_one_clear_error(target_dir, draft, tmp_path, content, message):
    bad = restrict_draft_head(draft, tmp_path / "bad", [1, 2, 3])
    (tmp_path / "bad" / "head_tokens.json").write_text(json.dumps(content))
    with pytest.raises(Exception, match=message):
        Engine(target_dir, draft=bad, device="cpu", tokenizer=False)


def test_restrict_draft_head_checks_its_arguments(draft, tmp_path):
    with pytest.raises(ValueError):
        restrict_draft_head(draft, tmp_path / "x", [])
    with pytest.raises(ValueError):
        restrict_draft_head(draft, tmp_path / "y", [-1, 2])
    restrict_draft_head(draft, tmp_path / "z", [5, 1, 5])
    assert json.loads((tmp_path / "z" / "head_tokens.json").read_text())["tokens"] == [1, 5]
    with pytest.raises(FileExistsError):
        restrict_draft_head(draft, tmp_path / "z", [1])


def test_draft_head_cli_keeps_the_most_frequent_tokens(draft, tmp_path):
    from longspec.training.data import save_token_shards

    rng = np.random.default_rng(0)
    # Token t appears about (t % 7 + 1) times as often as the rarest: the top ids are known.
    weights = np.array([(t % 7) + 1 for t in range(VOCAB)], dtype=np.float64)
    packed = rng.choice(VOCAB, size=(64, 256), p=weights / weights.sum()).astype(np.uint32)
    (tmp_path / "corpus").mkdir()
    save_token_shards(tmp_path / "corpus" / "train_packed.npz", packed)
    out = subprocess.run([sys.executable, "-m", "longspec", "draft-head", "--draft", draft, "--data",
                          str(tmp_path / "corpus"), "--size", "100", "--out", str(tmp_path / "h")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    kept = json.loads((tmp_path / "h" / "head_tokens.json").read_text())["tokens"]
    counts = np.bincount(packed.reshape(-1).astype(np.int64), minlength=VOCAB)
    assert len(kept) == 100 and kept == sorted(kept)
    assert counts[kept].min() >= np.sort(counts)[::-1][99]  # none rarer than the 100th most frequent
    assert report["corpus_coverage"] == pytest.approx(counts[kept].sum() / counts.sum(), abs=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_smollm2_draft_with_a_frequency_head_is_exact(smollm2_gguf, tmp_path, device):
    """The real target (a GGUF file, tied embeddings) and the packaged draft with a head over the
    8192 ids a tokenised text uses most (padded with the lowest ids): greedy output unchanged."""
    eng = Engine(smollm2_gguf, device=device)
    import inspect

    ids = eng.encode(inspect.getsource(np))[:600]
    counts = np.bincount(np.array(eng.encode(inspect.getsource(json) + inspect.getsource(subprocess))),
                         minlength=eng.target_info["vocab_size"])
    keep = np.sort(np.argsort(-counts, kind="stable")[:8192])
    small = restrict_draft_head(eng.draft_path, tmp_path / "smol_head", keep.tolist())
    eng_small = Engine(smollm2_gguf, draft=small, device=device)
    plain = eng.generate(ids, max_new_tokens=32, ignore_eos=True, speculative=False)
    spec = eng_small.generate(ids, max_new_tokens=32, ignore_eos=True, speculative=True)
    assert spec.tokens == plain.tokens
    assert spec.stats["mean_accepted"] > 1.0
