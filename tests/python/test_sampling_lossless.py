"""Speculative sampling is lossless: the emitted tokens follow the target's own distribution.

A tiny random Qwen2 with an 8-token vocabulary makes the exact distribution of the first three
generated tokens computable from the target's logits. The second and third tokens come from
speculation rounds (the first from the prefill), so their joint law exercises acceptance at the
root, at deeper nodes and the residual/bonus draw. Sample size: 60k runs per setting; a 1%
absolute bias in one cell then adds >= 60000 * 0.01^2 / p ~ 40 (p ~ 0.15) to the statistic, far
above the rejection threshold; the test also checks that a 1%-perturbed law IS rejected, so the
test has the power it claims.
"""
from __future__ import annotations

import numpy as np
import pytest

import longspec
from longspec import Engine

scipy_stats = pytest.importorskip("scipy.stats")

N_SAMPLES = 60000
VOCAB = 8


def processed(logits: np.ndarray, temperature: float, top_p: float, top_k: int) -> np.ndarray:
    """The engine's ProcessLogits in numpy: softmax(l/T), top-k, then top-p; renormalised."""
    l = logits.astype(np.float64)
    w = np.exp((l - l.max()) / temperature)
    order = sorted(range(len(w)), key=lambda i: (-w[i], i))
    keep = order if top_k == 0 else order[:top_k]
    if top_p < 1.0:
        total = sum(w[i] for i in keep)
        cum, cut = 0.0, []
        for i in keep:
            cut.append(i)
            cum += w[i]
            if cum >= top_p * total:
                break
        keep = cut
    p = np.zeros_like(w)
    p[keep] = w[keep]
    return p / p.sum()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from conftest import make_random_qwen2

    d = tmp_path_factory.mktemp("tiny")
    target = make_random_qwen2(str(d / "t"), seed=4, vocab=VOCAB, hidden=32, layers=1, heads=2, kv_heads=1,
                               inter=48, shard=False)
    draft = longspec.random_draft(target, d / "draft", seed=9, window=16, std=0.3)
    return target, draft


def exact_joint(eng, prompt, T, top_p, top_k):
    """P(t1, t2, t3) as a [V, V, V] array."""
    p1 = processed(eng.prompt_logits(prompt), T, top_p, top_k)
    joint = np.zeros((VOCAB, VOCAB, VOCAB))
    for a in range(VOCAB):
        if p1[a] == 0:
            continue
        p2 = processed(eng.prompt_logits(prompt + [a]), T, top_p, top_k)
        for b in range(VOCAB):
            if p2[b] == 0:
                continue
            p3 = processed(eng.prompt_logits(prompt + [a, b]), T, top_p, top_k)
            joint[a, b] = p1[a] * p2[b] * p3
    return joint


def chi_square_pvalue(counts: np.ndarray, probs: np.ndarray) -> float:
    counts, probs = counts.ravel(), probs.ravel()
    n = counts.sum()
    assert counts[probs == 0].sum() == 0, "a token with zero target probability was emitted"
    exp = probs * n
    big = exp >= 5
    obs_cells = list(counts[big]) + [counts[~big & (probs > 0)].sum()]
    exp_cells = list(exp[big]) + [exp[~big & (probs > 0)].sum()]
    if exp_cells[-1] == 0:
        obs_cells, exp_cells = obs_cells[:-1], exp_cells[:-1]
    return float(scipy_stats.chisquare(obs_cells, exp_cells).pvalue)


@pytest.mark.parametrize("T,top_p,top_k,tree", [
    (1.0, 1.0, 0, [3, 3, 3]),
    (0.7, 1.0, 0, [4, 16, 16, 16, 16]),
    (1.5, 0.8, 0, [2, 2, 2]),
    (1.0, 0.9, 5, [1, 1, 1]),
])
def test_speculative_sampling_matches_the_target_distribution(tiny, T, top_p, top_k, tree):
    target, draft = tiny
    check_law(Engine(target, draft=draft, device="cpu", tokenizer=False), T, top_p, top_k, tree)


def test_sampling_with_a_draft_model_matches_the_target_distribution(tiny, tmp_path):
    """The classic two-model draft (another small model of the same vocabulary, its own KV
    cache) goes through the same acceptance rule: the emitted law must be the target's."""
    from conftest import make_random_qwen2

    target, _ = tiny
    small = make_random_qwen2(str(tmp_path / "small"), seed=6, vocab=VOCAB, hidden=16, layers=1, heads=2, kv_heads=1,
                              inter=32, shard=False)
    check_law(Engine(target, draft=small, device="cpu", tokenizer=False), 1.0, 0.9, 0, [2, 2, 2])


def check_law(eng, T, top_p, top_k, tree):
    prompt = [1, 5, 2, 7]
    joint = exact_joint(eng, prompt, T, top_p, top_k)
    assert abs(joint.sum() - 1.0) < 1e-9
    counts = np.zeros_like(joint)
    accepted_beyond_root = 0
    for seed in range(N_SAMPLES):
        out = eng.generate(prompt, max_new_tokens=3, temperature=T, top_p=top_p, top_k=top_k, seed=seed,
                           ignore_eos=True, tree=tree)
        a, b, c = out.tokens
        counts[a, b, c] += 1
        accepted_beyond_root += out.stats["rounds"] == 1  # rounds that accepted a draft token
    # The draft must actually be accepted sometimes, or the test would only exercise bonus draws.
    assert accepted_beyond_root > N_SAMPLES * 0.05
    # Joint of the two speculative tokens given the first, and the full three-token joint.
    p_joint = chi_square_pvalue(counts.sum(axis=2), joint.sum(axis=2))
    p_three = chi_square_pvalue(counts, joint)
    assert p_joint > 1e-4, f"(t1, t2) law differs from the target's: p = {p_joint:.2g}"
    assert p_three > 1e-4, f"(t1, t2, t3) law differs from the target's: p = {p_three:.2g}"
    # Power: the same counts reject a law with 1% of mass moved between two likely cells.
    pair = joint.sum(axis=2).ravel()
    i, j = np.argsort(pair)[-2:]
    biased = pair.copy()
    biased[i] += 0.01
    biased[j] -= 0.01
    assert chi_square_pvalue(counts.sum(axis=2), biased.reshape(VOCAB, VOCAB)) < 1e-4


def test_plain_sampling_is_seeded_and_matches_too(tiny):
    target, _ = tiny
    eng = Engine(target, draft=None, device="cpu", tokenizer=False)
    prompt = [1, 5, 2, 7]
    a = eng.generate(prompt, max_new_tokens=5, temperature=1.0, seed=123, ignore_eos=True)
    b = eng.generate(prompt, max_new_tokens=5, temperature=1.0, seed=123, ignore_eos=True)
    assert a.tokens == b.tokens
    joint = exact_joint(eng, prompt, 1.0, 1.0, 0)
    counts = np.zeros_like(joint)
    for seed in range(20000):
        t = eng.generate(prompt, max_new_tokens=3, temperature=1.0, seed=seed, ignore_eos=True).tokens
        counts[t[0], t[1], t[2]] += 1
    assert chi_square_pvalue(counts, joint) > 1e-4
