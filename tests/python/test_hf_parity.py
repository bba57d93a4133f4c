"""The CPU engine against Hugging Face transformers (torch CPU, fp32) on the same weights.

Tolerance for last-position logits: max |ours - HF| <= 1e-3 * max(1, max |HF|). Both sides run
fp32 with different summation orders over every layer; the differences measured on these models
are ~1e-5 relative, so the bound leaves ~50x margin while still catching any real mistake (a
wrong rope, norm, bias or mask moves logits by O(1)).
"""
from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from conftest import hf_greedy, hf_last_logits

LOGIT_RTOL = 1e-3


def _long_text() -> str:
    # ~2.5k characters of real Python source: long enough for several attention chunks, the
    # hybrid prefix/tree split and more than one prefill chunk.
    return inspect.getsource(json.decoder)[:2600]


SMOL_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "Once upon a time, in a small village by the sea, there lived",
    None,  # the chat-template prompt, built in the test
    "LONG",
]


def _prompt_ids(eng, text):
    if text is None:
        return eng.tokenizer.apply_chat_template([{"role": "user", "content": "Write a haiku about the ocean."}])
    if text == "LONG":
        return eng.encode(_long_text())
    return eng.encode(text)


@pytest.fixture(scope="module")
def smol_engine(smollm2_gguf):
    from longspec import Engine

    return Engine(smollm2_gguf, draft=None, device="cpu", prefill_chunk=128)


def _check_logits(ours, ref):
    ours = np.asarray(ours, dtype=np.float64)
    assert ours.shape == ref.shape
    assert np.all(np.isfinite(ours))
    err = np.max(np.abs(ours - ref))
    bound = LOGIT_RTOL * max(1.0, np.max(np.abs(ref)))
    assert err <= bound, f"max |logit diff| {err:.3g} > {bound:.3g}"
    assert int(np.argmax(ours)) == int(np.argmax(ref))


@pytest.mark.parametrize("idx", range(len(SMOL_PROMPTS)))
def test_smollm2_last_logits_match_hf(smol_engine, hf_smollm2, idx):
    ids = _prompt_ids(smol_engine, SMOL_PROMPTS[idx])
    if SMOL_PROMPTS[idx] == "LONG":
        assert len(ids) > 300
    _check_logits(smol_engine.prompt_logits(ids), hf_last_logits(hf_smollm2, ids))


@pytest.mark.parametrize("idx", [0, 1, 3, 4])
def test_smollm2_greedy_64_tokens_identical_to_hf(smol_engine, hf_smollm2, idx):
    ids = _prompt_ids(smol_engine, SMOL_PROMPTS[idx])
    ref = hf_greedy(hf_smollm2, ids, 64)
    out = smol_engine.generate(ids, max_new_tokens=64, ignore_eos=True)
    assert out.tokens == ref
    assert out.finish_reason == "length"


@pytest.fixture(scope="module")
def qwen_engine(random_qwen2_dir):
    from longspec import Engine

    return Engine(random_qwen2_dir, draft=None, device="cpu", tokenizer=False, prefill_chunk=64)


def _random_prompts(vocab, n_prompts=4, seed=1):
    rng = np.random.default_rng(seed)
    lengths = [1, 7, 100, 300][:n_prompts]
    return [rng.integers(0, vocab, size=L).tolist() for L in lengths]


def test_random_qwen2_is_sharded_with_bias_and_untied(random_qwen2_dir):
    import os

    assert os.path.exists(os.path.join(random_qwen2_dir, "model.safetensors.index.json"))
    index = json.load(open(os.path.join(random_qwen2_dir, "model.safetensors.index.json")))
    assert len(set(index["weight_map"].values())) > 1
    assert "lm_head.weight" in index["weight_map"]
    assert "model.layers.0.self_attn.q_proj.bias" in index["weight_map"]


def test_random_qwen2_logits_match_hf(qwen_engine, hf_random_qwen2):
    vocab = qwen_engine.target_info["vocab_size"]
    for ids in _random_prompts(vocab):
        _check_logits(qwen_engine.prompt_logits(ids), hf_last_logits(hf_random_qwen2, ids))


def test_random_qwen2_greedy_identical_to_hf(qwen_engine, hf_random_qwen2):
    vocab = qwen_engine.target_info["vocab_size"]
    for ids in _random_prompts(vocab):
        ref = hf_greedy(hf_random_qwen2, ids, 64)
        out = qwen_engine.generate(ids, max_new_tokens=64, ignore_eos=True)
        assert out.tokens == ref
