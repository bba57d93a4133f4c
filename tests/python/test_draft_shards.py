"""A draft too large for one file: `write_draft(max_shard_bytes=)` and `longspec draft-shard` write
the shards model.safetensors.index.json names (Hugging Face's layout); the engine and the trainer
read them to the same weights (the same rounds, not only the same tokens), a shard size they fit
in makes one file again, and an index that points outside the directory is refused."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from longspec import Engine, random_draft
from longspec.drafts import INDEX_FILE, WEIGHTS_FILE, draft_weight_files, plan_shards, shard_draft

VOCAB = 512


@pytest.fixture(scope="module")
def target_dir(tmp_path_factory):
    pytest.importorskip("torch")
    from conftest import make_random_qwen2

    return make_random_qwen2(str(tmp_path_factory.mktemp("shard_target")), vocab=VOCAB, hidden=256, heads=4,
                             kv_heads=2, inter=256, shard=False)


def _copy_draft(target_dir, dest: Path) -> Path:
    return Path(random_draft(target_dir, dest, seed=5, window=32))


def _prompt(seed=0, n=160):
    return np.random.default_rng(seed).integers(0, VOCAB, n).tolist()


def test_plan_shards_cuts_in_name_order_and_gives_a_big_tensor_its_own_shard():
    tensors = {"b": np.zeros(10), "a": np.zeros(30), "c": np.zeros(5), "d": np.zeros(100)}
    assert plan_shards(tensors, 4, None) == [["a", "b", "c", "d"]]
    assert plan_shards(tensors, 4, 10_000) == [["a", "b", "c", "d"]]
    # a (120 bytes) then b (40) fit 160; c (20) would pass it; d (400) is alone
    assert plan_shards(tensors, 4, 160) == [["a", "b"], ["c"], ["d"]]
    with pytest.raises(ValueError):
        plan_shards(tensors, 4, 0)


def test_a_sharded_draft_gives_the_one_file_drafts_rounds(target_dir, tmp_path):
    one = _copy_draft(target_dir, tmp_path / "one")
    sharded = _copy_draft(target_dir, tmp_path / "sharded")
    files = shard_draft(sharded, 64 * 1024)
    assert len(files) > 2 and not (sharded / WEIGHTS_FILE).exists()
    index = json.loads((sharded / INDEX_FILE).read_text())
    assert sorted({Path(f).name for f in files}) == sorted(set(index["weight_map"].values()))
    assert all(Path(f).stat().st_size <= 64 * 1024 + 4096 or len(_names(f)) == 1 for f in files)
    a = Engine(target_dir, draft=str(one), device="cpu", tokenizer=False)
    b = Engine(target_dir, draft=str(sharded), device="cpu", tokenizer=False)
    for tree in ([4, 4], [2, 2, 2]):
        x = a.generate(_prompt(), max_new_tokens=16, ignore_eos=True, tree=tree)
        y = b.generate(_prompt(), max_new_tokens=16, ignore_eos=True, tree=tree)
        assert x.tokens == y.tokens
        assert x.stats["accepted_histogram"] == y.stats["accepted_histogram"]


def _names(file):
    from safetensors import safe_open

    with safe_open(file, framework="numpy") as f:
        return list(f.keys())


def test_the_trainer_reads_a_sharded_draft_to_the_same_tensors(target_dir, tmp_path):
    torch = pytest.importorskip("torch")
    from longspec.training.draft_torch import LongSpecDraft

    one = _copy_draft(target_dir, tmp_path / "one")
    sharded = _copy_draft(target_dir, tmp_path / "sharded")
    shard_draft(sharded, 32 * 1024)
    inv_freq = torch.ones(32)
    x = LongSpecDraft.from_checkpoint(str(one), inv_freq).state_dict()
    y = LongSpecDraft.from_checkpoint(str(sharded), inv_freq).state_dict()
    assert x.keys() == y.keys()
    assert all(torch.equal(x[k], y[k]) for k in x)


def test_draft_shard_cli_round_trips_bf16_weights_bit_for_bit(target_dir, tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file

    d = _copy_draft(target_dir, tmp_path / "d")
    # as training writes them: bf16
    save_file({k: v.to(torch.bfloat16) for k, v in load_file(d / WEIGHTS_FILE).items()}, d / WEIGHTS_FILE)
    before = load_file(d / WEIGHTS_FILE)
    run = [sys.executable, "-m", "longspec", "draft-shard", str(d)]
    out = subprocess.run(run + ["--max-mb", "0.05"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(json.loads(out.stdout)["files"]) > 1
    after = {}
    for f in draft_weight_files(d):
        after.update(load_file(f))
    assert before.keys() == after.keys()
    assert all(after[k].dtype == torch.bfloat16 and torch.equal(before[k], after[k]) for k in before)
    # back to one file: the index and the shards go
    out = subprocess.run(run + ["--max-mb", "100"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(p.name for p in d.iterdir()) == ["config.json", WEIGHTS_FILE]
    assert all(torch.equal(before[k], v) for k, v in load_file(d / WEIGHTS_FILE).items())


def test_an_index_naming_a_file_outside_the_directory_is_refused(target_dir, tmp_path):
    d = _copy_draft(target_dir, tmp_path / "d")
    shard_draft(d, 64 * 1024)
    index = json.loads((d / INDEX_FILE).read_text())
    name = next(iter(index["weight_map"]))
    index["weight_map"][name] = "../elsewhere.safetensors"
    (d / INDEX_FILE).write_text(json.dumps(index))
    with pytest.raises(ValueError, match="plain file name"):
        draft_weight_files(d)
    with pytest.raises(Exception, match="plain file name"):
        Engine(target_dir, draft=str(d), device="cpu", tokenizer=False)
    # the refusal leaves nothing behind: a good draft still loads
    Engine(target_dir, draft=str(_copy_draft(target_dir, tmp_path / "good")), device="cpu", tokenizer=False)


def test_draft_shard_cli_refuses_a_directory_without_a_draft(tmp_path):
    out = subprocess.run([sys.executable, "-m", "longspec", "draft-shard", str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0 and "no config.json" in out.stderr
