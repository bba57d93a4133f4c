"""The PyTorch draft layer computes what the C++ draft computes, on the same checkpoint.

Tolerance: max |torch - engine| <= 1e-3 * max(1, max |engine|) on the draft logits (both fp32;
the target K/V come from HF on one side and from the engine on the other, so the differences
are fp32 summation-order effects, measured ~1e-5 relative).
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import longspec
from longspec import Engine
from longspec.training.draft_torch import LongSpecDraft
from longspec.training.target import load_target, rope_of, target_forward


@pytest.mark.parametrize("window,prompt_len,final_norm,mlp", [(16, 40, False, None), (64, 20, True, None),
                                                               (8, 8, False, None), (16, 30, False, 56)])
def test_torch_draft_matches_engine_draft(random_qwen2_dir, tmp_path, window, prompt_len, final_norm, mlp):
    draft_dir = longspec.random_draft(random_qwen2_dir, tmp_path / "d", seed=5, window=window, std=0.1,
                                      final_norm=final_norm, mlp_intermediate_size=mlp)
    eng = Engine(random_qwen2_dir, draft=draft_dir, device="cpu", tokenizer=False)
    rng = np.random.default_rng(prompt_len)
    prompt = rng.integers(0, 512, size=prompt_len).tolist()
    cont = rng.integers(0, 512, size=6).tolist()
    ours = eng.draft_logits(prompt, cont)

    target = load_target(random_qwen2_dir)
    inv_freq, scaling = rope_of(target)
    engine_inv = torch.tensor(longspec._C.model_config(random_qwen2_dir)["rope_inv_freq"])
    assert torch.allclose(inv_freq, engine_inv, rtol=1e-6)
    draft = LongSpecDraft.from_checkpoint(draft_dir, inv_freq, scaling)
    ids = torch.tensor([prompt + cont])
    N, T = len(prompt), len(prompt) + len(cont)
    pos = torch.arange(T)[None]
    k, v = target_forward(target, ids[:, :N], pos[:, :N])
    # Prompt rows see target keys < their position; the round's rows all see the committed prompt.
    i = torch.arange(T)[:, None]
    j = torch.arange(N)[None, :]
    cross = (j < torch.minimum(i, torch.tensor(N)))[None]
    with torch.no_grad():
        h = draft(target.get_input_embeddings()(ids), pos, k, v, cross)
        ref = target.get_output_embeddings()(h[:, N:])[0].double().numpy()
    err = np.abs(ours - ref).max()
    assert err <= 1e-3 * max(1.0, np.abs(ours).max()), err
    assert (ours.argmax(-1) == ref.argmax(-1)).all()
