"""Self-distillation data (longspec.training.selfgen): the continuations are the target's greedy
path with end-of-text held back (or seeded samples), prompts of different lengths keep their
tokens, instruction-shaped prompts are eval-draft's, the mix keeps every corpus row and the
fraction asked for, and a bad request is one clear error that writes nothing."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from longspec.training import selfgen as G
from longspec.training.data import load_token_shards, save_token_shards


def _greedy_holding_back(model, prompt: np.ndarray, n: int, banned: int) -> list[int]:
    """Greedy decoding by full forwards, never choosing `banned` (the reference of the generator)."""
    ids = torch.as_tensor(prompt[None].astype(np.int64))
    out = []
    with torch.no_grad():
        for _ in range(n):
            logits = model(ids).logits[0, -1].clone()
            logits[banned] = -float("inf")
            tok = int(torch.argmax(logits))
            out.append(tok)
            ids = torch.cat([ids, torch.tensor([[tok]])], dim=1)
    return out


def _corpus(tmp_path, rows=24, seq_len=20, vocab=512, seed=0):
    rng = np.random.default_rng(seed)
    d = tmp_path / "C"
    save_token_shards(d / "train_packed.npz", rng.integers(3, vocab, size=(rows, seq_len)).astype(np.uint32))
    save_token_shards(d / "heldout_long.npz", [rng.integers(3, vocab, size=40).astype(np.uint32)])
    (d / "data_manifest.json").write_text(json.dumps({"pack": {"seq_len": seq_len, "rows": rows}}))
    return d


def test_continuations_are_the_targets_greedy_path_without_end_of_text(hf_random_qwen2):
    model = hf_random_qwen2
    eos = model.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    # End-of-text made the argmax of the first step of prompt 0 (its row a scaled copy of the row
    # the model would choose there), so that holding it back is exercised.
    prompts = np.random.default_rng(1).integers(3, 512, size=(3, 7)).astype(np.uint32)
    with torch.no_grad():
        logits = model(torch.as_tensor(prompts[:1].astype(np.int64))).logits[0, -1]
        first = int(torch.argmax(logits))
        assert logits[first] > 0
        saved = model.lm_head.weight[eos].clone()
        model.lm_head.weight[eos] = 1.5 * model.lm_head.weight[first]
        assert int(torch.argmax(model(torch.as_tensor(prompts[:1].astype(np.int64))).logits[0, -1])) == eos
    try:
        rows = G.generate_rows(model, list(prompts), 13, batch_size=2, device="cpu")
        assert rows.shape == (3, 13)
        assert np.array_equal(rows[:, :7], prompts)
        for i in range(3):
            assert list(rows[i, 7:]) == _greedy_holding_back(model, prompts[i], 6, eos)
            assert eos not in rows[i, 7:]
    finally:
        with torch.no_grad():
            model.lm_head.weight[eos] = saved


def test_prompts_of_different_lengths_keep_their_tokens_and_fill_the_row(hf_random_qwen2):
    rng = np.random.default_rng(3)
    prompts = [rng.integers(3, 512, size=n).astype(np.int64) for n in (5, 9, 7, 9)]
    rows = G.generate_rows(hf_random_qwen2, prompts, 16, batch_size=3, device="cpu")
    assert rows.shape == (4, 16)
    for p, r in zip(prompts, rows):
        assert np.array_equal(r[:len(p)], p)
    # The batch's longest prompt is not padded: its continuation is the greedy reference.
    eos = hf_random_qwen2.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    assert list(rows[1, 9:]) == _greedy_holding_back(hf_random_qwen2, prompts[1], 7, eos)


def test_sampling_is_seeded_and_differs_from_greedy(hf_random_qwen2):
    prompts = list(np.random.default_rng(4).integers(3, 512, size=(4, 6)))
    a = G.generate_rows(hf_random_qwen2, prompts, 30, batch_size=2, device="cpu", temperature=1.5, seed=9)
    b = G.generate_rows(hf_random_qwen2, prompts, 30, batch_size=2, device="cpu", temperature=1.5, seed=9)
    c = G.generate_rows(hf_random_qwen2, prompts, 30, batch_size=2, device="cpu", temperature=1.5, seed=10)
    greedy = G.generate_rows(hf_random_qwen2, prompts, 30, batch_size=2, device="cpu")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, greedy)
    assert np.array_equal(a[:, :6], np.stack(prompts))


def test_instruction_prompts_are_eval_drafts(tiny_chat_model_dir):
    import transformers
    from longspec.tokenizer import Tokenizer
    from longspec.training.cli import instruction_prompt

    tok = Tokenizer.from_checkpoint(tiny_chat_model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir, dtype=torch.float32).eval()
    text = ("The cache keeps the keys and values of every position, so that a new token attends to the "
            "whole context without recomputing it. ") * 12
    ids = np.asarray(tok.encode(text), dtype=np.uint32)
    rows = np.stack([ids[i:i + 160] for i in (0, 7, 19)])
    prompts = G.instruction_prompts(tok, rows, 120, seed=1)
    for r, p in zip(rows, prompts):
        assert len(p) <= 120
        assert any(list(p) == instruction_prompt(tok, r, 120, text) for text in G.TRAIN_INSTRUCTIONS)
    out = G.generate_rows(model, prompts, 136, batch_size=2, device="cpu")
    assert out.shape == (3, 136)
    for p, o in zip(prompts, out):
        assert np.array_equal(o[:len(p)], p)


def test_mix_keeps_every_corpus_row_and_the_fraction_asked_for():
    human = np.arange(100 * 4, dtype=np.uint32).reshape(100, 4)
    generated = np.full((10, 4), 7, dtype=np.uint32)
    rows, copies = G.mix_rows(human, generated, 0.3, seed=5)
    assert copies == round(0.3 / 0.7 * 100 / 10)
    assert rows.shape == (100 + 10 * copies, 4)
    assert abs((rows == 7).all(axis=1).mean() - 0.3) < 0.02
    assert sorted(map(tuple, rows[~(rows == 7).all(axis=1)])) == sorted(map(tuple, human))
    again, _ = G.mix_rows(human, generated, 0.3, seed=5)
    assert np.array_equal(rows, again)
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="mix"):
            G.mix_rows(human, generated, bad, seed=0)
    with pytest.raises(ValueError, match="tokens"):
        G.mix_rows(human, generated[:, :3], 0.3, seed=0)


def test_selfgen_writes_a_corpus_beside_the_old_one(tmp_path, hf_random_qwen2):
    data = _corpus(tmp_path)
    before = load_token_shards(data / "train_packed.npz")
    section = G.selfgen(data, tmp_path / "G", "random", rows=5, new_tokens=8, mix=0.25, batch_size=3,
                        seed=2, device="cpu", model=hf_random_qwen2)
    assert section["generated_rows"] == 5 and section["prompt_tokens"] == 12
    rows = load_token_shards(tmp_path / "G" / "train_packed.npz")
    assert rows.shape == (24 + 5 * section["copies"], 20)
    # The corpus rows are all there, and each generated row starts with a corpus row's prompt.
    as_set = {tuple(r) for r in before}
    extra = [r for r in rows if tuple(r) not in as_set]
    assert len(extra) == 5 * section["copies"]
    prompts = {tuple(r[:12]) for r in before}
    assert all(tuple(r[:12]) in prompts for r in extra)
    manifest = json.loads((tmp_path / "G" / "data_manifest.json").read_text())
    assert manifest["selfgen"] == section and manifest["pack"]["rows"] == rows.shape[0]
    assert (tmp_path / "G" / "heldout_long.npz").read_bytes() == (data / "heldout_long.npz").read_bytes()
    assert np.array_equal(load_token_shards(data / "train_packed.npz"), before)  # the old corpus untouched


class _ModelNotToRun:
    """A target whose use fails the test: a bad request must be refused before any generation."""

    def __getattr__(self, name):
        raise AssertionError(f"the target was used ({name}) for a request that should have been refused")


@pytest.mark.parametrize("kwargs, match", [
    ({"new_tokens": 20}, "new-tokens"),
    ({"new_tokens": 0}, "new-tokens"),
    ({"rows": 25}, "rows"),
    ({"rows": 0}, "rows"),
    ({"shape": "poem"}, "shape"),
    ({"temperature": -1.0}, "temperature"),
    ({"mix": 1.0}, "mix"),
])
def test_bad_requests_are_clear_errors_that_write_nothing(tmp_path, hf_random_qwen2, kwargs, match):
    data = _corpus(tmp_path)
    args = {"rows": 4, "new_tokens": 8, "mix": 0.3, "batch_size": 2, "device": "cpu", "model": _ModelNotToRun()} | kwargs
    with pytest.raises(ValueError, match=match):
        G.selfgen(data, tmp_path / "G", "random", **args)
    assert not (tmp_path / "G").exists()
    with pytest.raises(ValueError, match="differ"):
        G.selfgen(data, data, "random", rows=4, new_tokens=8, device="cpu", model=hf_random_qwen2)


def test_selfgen_instruction_shape_sampled(tmp_path, tiny_chat_model_dir):
    import transformers
    from longspec.tokenizer import Tokenizer

    tok = Tokenizer.from_checkpoint(tiny_chat_model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir, dtype=torch.float32).eval()
    text = "A draft model proposes tokens; the target verifies them all in one step and keeps a prefix. " * 30
    ids = np.asarray(tok.encode(text), dtype=np.uint32)
    data = tmp_path / "C"
    save_token_shards(data / "train_packed.npz", np.stack([ids[i:i + 160] for i in range(0, 60, 6)]))
    (data / "data_manifest.json").write_text("{}")
    section = G.selfgen(data, tmp_path / "G", tiny_chat_model_dir, rows=4, new_tokens=40, mix=0.5, batch_size=4,
                        device="cpu", shape="instruction", temperature=0.8, model=model, tokenizer=tok)
    assert section["shape"] == "instruction" and section["generated_rows"] == 4
    assert "temperature 0.8" in section["decoding"]
    rows = load_token_shards(tmp_path / "G" / "train_packed.npz")
    assert rows.shape[1] == 160 and rows.shape[0] == 10 + 4 * section["copies"]
    im_start = tok.token_to_id("<|im_start|>")
    assert sum(int(r[0]) == im_start for r in rows) == 4 * section["copies"]
