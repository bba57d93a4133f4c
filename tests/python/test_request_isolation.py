"""A request's tokens do not depend on what the engine ran before it (on the CPU, and on the GPU
where captured graphs and grown buffers could carry state from one request to the next)."""
from __future__ import annotations

import numpy as np
import pytest

import longspec

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.mark.parametrize("device", DEVICES)
def test_engine_state_does_not_leak_between_requests(tmp_path, device):
    """Each request of a mixed sequence (plain and speculative, small and large trees, short and
    long prompts crossing the KV buckets of the captured graphs, sampling between greedy requests)
    gives what a fresh engine gives for that request alone."""
    pytest.importorskip("torch")
    from conftest import make_random_qwen2

    target = make_random_qwen2(str(tmp_path / "t"), seed=7, vocab=1000, hidden=256, layers=2, heads=4, kv_heads=2,
                               inter=256, max_pos=4096, shard=False)
    draft = longspec.random_draft(target, tmp_path / "d", seed=3, window=64)
    rng = np.random.default_rng(2)
    requests = [(90, {"speculative": False}), (1500, {"tree": [2, 2]}), (3000, {"tree": [16, 32, 32, 32, 32]}),
                (700, {"speculative": False, "temperature": 0.8, "seed": 5}), (2200, {"tree": [4, 16, 16, 16, 16]}),
                (40, {"tree": [1]}), (3300, {"speculative": False}),
                (1200, {"tree": [8, 32, 32, 32, 32], "temperature": 0.7, "seed": 9})]
    prompts = [rng.integers(0, 1000, n).tolist() for n, _ in requests]

    def engine():
        return longspec.Engine(target, draft=draft, device=device, tokenizer=False, num_threads=2)

    def run(eng, prompt, kw):
        return eng.generate(prompt, max_new_tokens=16, ignore_eos=True, **kw).tokens

    shared = engine()
    mixed = [run(shared, p, kw) for p, (_, kw) in zip(prompts, requests)]
    for i, (p, (_, kw)) in enumerate(zip(prompts, requests)):
        assert mixed[i] == run(engine(), p, kw), (i, kw)
