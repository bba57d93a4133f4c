"""The drafts committed under models/ are whole checkpoints: every tensor their config implies, at
its shape, in bf16, each in exactly one weight file (one model.safetensors or the shards the index
names, every shard under 60 MB so that git and a device call carry it), a head_tokens.json of
valid ids, and a tree_shape the engine accepts. No target file is needed: the config records the
target's shape."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from longspec.drafts import HEAD_TOKENS_FILE, draft_tensor_shapes, draft_weight_files

MODELS = Path(__file__).resolve().parents[2] / "models"
DRAFTS = sorted(p.parent for p in MODELS.glob("*/config.json"))


def test_every_shipped_target_has_its_draft_here():
    names = {p.name for p in DRAFTS}
    assert {"smollm2-135m-instruct-longspec", "qwen2.5-coder-0.5b-instruct-longspec",
            "qwen2.5-coder-1.5b-instruct-longspec"} <= names


@pytest.mark.parametrize("draft", DRAFTS, ids=lambda p: p.name)
def test_a_committed_draft_is_a_whole_checkpoint(draft):
    from safetensors import safe_open

    config = json.loads((draft / "config.json").read_text())
    target = config["target"]
    expected = draft_tensor_shapes(target, config["attention_bias"], config["final_norm"],
                                   config.get("mlp_intermediate_size"))
    found = {}
    for file in draft_weight_files(draft):
        assert Path(file).stat().st_size < 60 * 1000 * 1000, f"{file} is too large to commit or carry"
        with safe_open(file, framework="pt") as f:
            for name in f.keys():
                assert name not in found, f"{name} is in two weight files"
                s = f.get_slice(name)
                found[name] = (tuple(s.get_shape()), s.get_dtype())
    assert {k: v[0] for k, v in found.items()} == {k: tuple(v) for k, v in expected.items()}
    assert {v[1] for v in found.values()} == {"BF16"}
    assert config["tree_shape"] and all(isinstance(w, int) and w >= 1 for w in config["tree_shape"])
    head = draft / HEAD_TOKENS_FILE
    if head.is_file():
        tokens = json.loads(head.read_text())["tokens"]
        assert tokens == sorted(set(tokens)) and 0 <= tokens[0] and tokens[-1] < target["vocab_size"]
