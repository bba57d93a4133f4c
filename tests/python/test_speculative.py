"""Speculative decoding on the CPU reference engine: the invariants of DESIGN.md section 4.

- speculative greedy == plain greedy, token for token (real SmolLM2 + random draft, random Qwen2);
- an oracle draft (the target drafting for itself) accepts the full depth every round;
- sampling is lossless (chi-square against the target's exact distribution);
- the draft's memory does not grow with the context.
"""
from __future__ import annotations

import inspect
import json
import os

import numpy as np
import pytest

import longspec
from longspec import Engine


def _texts():
    import http.client
    import textwrap

    src = inspect.getsource(http.client)
    return [
        "The capital of France is",
        "def quicksort(arr):\n",
        "Write a short poem about autumn leaves.",
        "1, 2, 3, 4, 5, 6,",
        "The quick brown fox",
        "import numpy as np\nimport torch\n\nclass",
        "In 1905, Albert Einstein published",
        # Prompts longer than the draft window (W = 512 tokens).
        src[:3000],
        src[5000:9000],
        textwrap.dedent(inspect.getsource(json.decoder))[:4000],
    ]


@pytest.fixture(scope="module")
def smol_draft(smollm2_gguf, tmp_path_factory):
    return longspec.random_draft(smollm2_gguf, tmp_path_factory.mktemp("smol_draft"), seed=1)


@pytest.fixture(scope="module")
def smol_spec(smollm2_gguf, smol_draft):
    return Engine(smollm2_gguf, draft=smol_draft, device="cpu", prefill_chunk=256)


def test_random_draft_checkpoint_format(smol_draft, smollm2_gguf):
    cfg = json.load(open(os.path.join(smol_draft, "config.json")))
    assert cfg["format"] == "longspec-draft" and cfg["window"] == 512
    assert cfg["target"]["hidden_size"] == 576 and cfg["target"]["vocab_size"] == 49152
    assert cfg["tree_shape"] == [4, 16, 16, 16, 16]
    eng = Engine(smollm2_gguf, draft=smol_draft, device="cpu", tokenizer=False)
    assert eng.has_draft and eng.tree == [4, 16, 16, 16, 16]
    assert eng.draft_info["architecture"] == "longspec-draft"


def test_speculative_greedy_equals_plain_greedy_smollm2(smol_spec):
    prompts = _texts()
    assert len(prompts) >= 10
    lengths = []
    for i, text in enumerate(prompts):
        ids = smol_spec.encode(text)
        lengths.append(len(ids))
        # The default tree on some prompts, smaller trees and a chain on others (CPU time).
        tree = [[4, 16, 16, 16, 16], [2, 4, 4], [1, 1, 1, 1], [3, 3, 3, 3, 3, 3]][i % 4]
        plain = smol_spec.generate(ids, max_new_tokens=128, ignore_eos=True, speculative=False)
        spec = smol_spec.generate(ids, max_new_tokens=128, ignore_eos=True, tree=tree)
        assert spec.tokens == plain.tokens, f"prompt {i} (tree {tree}) diverged"
        assert spec.stats["speculative"] and not plain.stats["speculative"]
        assert spec.stats["rounds"] >= 1
        assert sum(k * n for k, n in enumerate(spec.stats["accepted_histogram"])) >= 127
    assert max(lengths) > 512, "need prompts longer than the draft window"


def test_packaged_trained_draft_is_picked_up_and_exact(smollm2_gguf):
    """draft="auto" finds the draft shipped for this exact target; greedy output stays identical to
    plain greedy decoding, and the trained draft is accepted far more often than a random one."""
    eng = Engine(smollm2_gguf, device="cpu")  # draft="auto" by default
    assert eng.has_draft and "packaged_drafts" in eng.draft_path
    assert eng.draft_info["architecture"] == "longspec-draft"
    taus = []
    for i, text in enumerate(_texts()):
        ids = eng.encode(text)
        plain = eng.generate(ids, max_new_tokens=128, ignore_eos=True, speculative=False)
        spec = eng.generate(ids, max_new_tokens=128, ignore_eos=True, speculative=True)  # the CPU default is plain
        assert spec.tokens == plain.tokens, f"prompt {i} diverged with the trained draft"
        taus.append(spec.stats["mean_accepted"])
    assert sum(taus) / len(taus) > 1.8, taus


def test_verify_nodes_verifies_the_best_subtree_and_the_draft_commits_in_its_own_numbers(smollm2_gguf, monkeypatch):
    """verify_nodes=N: grow the tree, verify its root and N best nodes. Greedy output stays plain's.
    Where the probe says every round of the whole tree accepted within its best N + 1 nodes (root
    included), the pruned run must be the same rounds exactly: the same tree grows each round only
    if the draft committed the accepted path in its grown tree's numbers (a commit in verify-tree
    numbers moves the wrong K/V into the draft's window and the later rounds differ)."""
    eng = Engine(smollm2_gguf, device="cpu", tokenizer=True)  # the packaged, trained draft
    tree = [4, 16, 16, 16, 16]  # 69 nodes
    candidates = [20, 30, 40, 50, 60, 64, 67]  # 67: one node pruned
    found = []
    for text in _texts()[7:]:  # the long prompts, until one has such an N
        ids = eng.encode(text)
        monkeypatch.setenv("LONGSPEC_BEST_N_PROBE", ",".join(str(n + 1) for n in candidates))
        full = eng.generate(ids, max_new_tokens=40, ignore_eos=True, tree=tree)
        monkeypatch.delenv("LONGSPEC_BEST_N_PROBE")
        made = sum(k * c for k, c in enumerate(full.stats["accepted_histogram"]))
        found.append((full.stats["best_n_tokens"], made))
        within = [n for n in candidates if full.stats["best_n_tokens"][n + 1] == made]
        if within:
            break
    assert within, f"no prompt and N hold every accepted path (best N + 1 tokens vs made): {found}"
    keep = within[0]
    plain = eng.generate(ids, max_new_tokens=40, ignore_eos=True, speculative=False)
    assert full.tokens == plain.tokens
    pruned = eng.generate(ids, max_new_tokens=40, ignore_eos=True, tree=tree, verify_nodes=keep)
    assert pruned.tokens == plain.tokens
    assert pruned.stats["rounds"] == full.stats["rounds"]
    assert pruned.stats["accepted_histogram"] == full.stats["accepted_histogram"]
    # Smaller N: fewer tokens a round at most, still exact; wider growth verified at the same size.
    for n, grown in ((3, tree), (69, [16, 32, 32, 32, 32])):
        out = eng.generate(ids, max_new_tokens=40, ignore_eos=True, tree=grown, verify_nodes=n)
        assert out.tokens == plain.tokens, (n, grown)
        assert out.stats["speculative"] and out.stats["mean_accepted"] <= 1 + len(grown)
    # verify_nodes alone asks for speculation with the engine's own tree (plain is the CPU default).
    alone = eng.generate(ids, max_new_tokens=16, ignore_eos=True, verify_nodes=30)
    assert alone.stats["speculative"] and alone.tokens == plain.tokens[:16]
    sampled = eng.generate(ids, max_new_tokens=12, temperature=0.8, seed=5, tree=tree, verify_nodes=10, ignore_eos=True)
    assert len(sampled.tokens) == 12
    with pytest.raises(ValueError, match="verify_nodes"):
        eng.generate(ids, max_new_tokens=4, tree="auto", verify_nodes=10)
    with pytest.raises(ValueError, match="verify_nodes"):
        eng.generate(ids, max_new_tokens=4, tree=tree, verify_nodes=-2)
    with pytest.raises(TypeError, match="verify_nodes"):
        eng.generate(ids, max_new_tokens=4, tree=tree, verify_nodes="10")
    assert eng.generate(ids, max_new_tokens=8, ignore_eos=True, tree=tree).tokens == plain.tokens[:8]


def test_speculative_stats(smol_spec):
    out = smol_spec.generate("Hello", max_new_tokens=20, ignore_eos=True, speculative=True)
    s = out.stats
    for key in ("rounds", "mean_accepted", "accepted_histogram", "draft_s", "verify_s", "other_s",
                "tokens_per_s", "target_cache_bytes", "draft_cache_bytes"):
        assert key in s
    assert s["rounds"] > 0 and s["mean_accepted"] >= 1.0
    assert len(out.tokens) == 20
    hist = s["accepted_histogram"]
    assert sum(hist) == s["rounds"]
    assert abs(sum(k * n for k, n in enumerate(hist)) / s["rounds"] - s["mean_accepted"]) < 1e-9
    assert s["draft_s"] > 0 and s["verify_s"] > 0


@pytest.fixture(scope="module")
def qwen_draft(random_qwen2_dir, tmp_path_factory):
    return longspec.random_draft(random_qwen2_dir, tmp_path_factory.mktemp("qwen_draft"), seed=2, window=32)


def test_speculative_greedy_equals_plain_greedy_random_qwen2(random_qwen2_dir, qwen_draft):
    eng = Engine(random_qwen2_dir, draft=qwen_draft, device="cpu", tokenizer=False, prefill_chunk=64)
    rng = np.random.default_rng(3)
    for L in (1, 5, 31, 33, 200, 700):
        ids = rng.integers(0, 512, size=L).tolist()
        plain = eng.generate(ids, max_new_tokens=96, ignore_eos=True, speculative=False)
        for tree in ([4, 16, 16, 16, 16], [1] * 8, [8, 8]):
            spec = eng.generate(ids, max_new_tokens=96, ignore_eos=True, tree=tree)
            assert spec.tokens == plain.tokens, f"prompt length {L}, tree {tree}"


def test_a_draft_with_a_narrower_mlp_is_exact_and_checked(random_qwen2_dir, tmp_path):
    """mlp_intermediate_size (the draft's MLP width, a config option) loads, speculates exactly,
    and a config that says one width while the tensors have another is one clear error."""
    import json

    narrow = longspec.random_draft(random_qwen2_dir, tmp_path / "narrow", seed=4, window=32, std=0.1,
                                   mlp_intermediate_size=40)
    cfg_path = f"{narrow}/config.json"
    with open(cfg_path) as f:
        cfg = json.load(f)
    assert cfg["mlp_intermediate_size"] == 40
    eng = Engine(random_qwen2_dir, draft=narrow, device="cpu", tokenizer=False)
    assert eng.draft_info["intermediate_size"] == 40
    ids = np.random.default_rng(8).integers(0, 512, size=90).tolist()
    plain = eng.generate(ids, max_new_tokens=48, ignore_eos=True, speculative=False)
    assert eng.generate(ids, max_new_tokens=48, ignore_eos=True, tree=[4, 8, 8]).tokens == plain.tokens
    for bad, match in ((64, "mlp.gate_proj"), (0, "mlp_intermediate_size"), (2.5, "mlp_intermediate_size")):
        cfg["mlp_intermediate_size"] = bad
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        with pytest.raises(ValueError, match=match):
            Engine(random_qwen2_dir, draft=narrow, device="cpu", tokenizer=False)
    with pytest.raises(ValueError, match="mlp_intermediate_size"):
        longspec.random_draft(random_qwen2_dir, tmp_path / "bad", mlp_intermediate_size=0)


@pytest.mark.parametrize("depth", [1, 4, 9])
def test_oracle_draft_accepts_full_depth_every_round(random_qwen2_dir, depth):
    eng = Engine(random_qwen2_dir, draft="oracle", device="cpu", tokenizer=False)
    ids = list(range(3, 60))
    rounds = 7
    n = 1 + rounds * (depth + 1)  # the first token comes from the prefill
    out = eng.generate(ids, max_new_tokens=n, ignore_eos=True, tree=[1] * depth)
    plain = eng.generate(ids, max_new_tokens=n, ignore_eos=True, speculative=False)
    assert out.tokens == plain.tokens
    s = out.stats
    assert s["rounds"] == rounds
    assert s["mean_accepted"] == depth + 1
    assert s["accepted_histogram"][depth + 1] == rounds


def test_oracle_draft_on_a_tree_is_exact(random_qwen2_dir):
    eng = Engine(random_qwen2_dir, draft="oracle", device="cpu", tokenizer=False)
    ids = list(range(100, 140))
    out = eng.generate(ids, max_new_tokens=60, ignore_eos=True, tree=[4, 16, 16])
    plain = eng.generate(ids, max_new_tokens=60, ignore_eos=True, speculative=False)
    assert out.tokens == plain.tokens
    assert out.stats["mean_accepted"] > 2.5  # the target's own greedy path is almost always in the beam


def test_stop_conditions_fire_mid_path(random_qwen2_dir):
    eng = Engine(random_qwen2_dir, draft="oracle", device="cpu", tokenizer=False)
    ids = list(range(10, 30))
    plain = eng.generate(ids, max_new_tokens=40, ignore_eos=True, speculative=False)
    stop = plain.tokens[6]
    first = plain.tokens.index(stop)
    out = eng.generate(ids, max_new_tokens=40, ignore_eos=True, tree=[1] * 5, stop_token_ids=[stop])
    assert out.tokens == plain.tokens[: first + 1]
    assert out.finish_reason == "stop"
    for n in (1, 2, 3, 7, 13):
        out = eng.generate(ids, max_new_tokens=n, ignore_eos=True, tree=[1] * 5)
        assert out.tokens == plain.tokens[:n] and out.finish_reason == "length"


def test_draft_cache_bytes_do_not_grow_with_context(tmp_path):
    from conftest import make_random_qwen2

    target = make_random_qwen2(str(tmp_path / "t"), vocab=256, hidden=32, layers=1, heads=2, kv_heads=1,
                               inter=64, max_pos=40000, shard=False)
    draft = longspec.random_draft(target, tmp_path / "d", seed=0, window=64)
    eng = Engine(target, draft=draft, device="cpu", tokenizer=False, prefill_chunk=1024)
    rng = np.random.default_rng(0)
    draft_bytes, target_bytes = [], []
    for ctx in (1024, 8192, 32768):
        ids = rng.integers(0, 256, size=ctx).tolist()
        out = eng.generate(ids, max_new_tokens=8, ignore_eos=True, tree=[2, 2])
        draft_bytes.append(out.stats["draft_cache_bytes"])
        target_bytes.append(out.stats["target_cache_bytes"])
    assert draft_bytes[0] == draft_bytes[1] == draft_bytes[2] > 0
    assert target_bytes[0] < target_bytes[1] < target_bytes[2]


def test_a_draft_model_of_the_same_tokenizer_is_exact(random_qwen2_dir, tmp_path):
    """The classic two-model draft: a smaller model of the same vocabulary drafts with its own KV
    cache (which, unlike the LongSpec draft's ring, grows with the context)."""
    from conftest import make_random_qwen2

    small = make_random_qwen2(str(tmp_path / "small"), seed=5, vocab=512, hidden=32, layers=1, heads=2, kv_heads=1,
                              inter=64)
    eng = Engine(random_qwen2_dir, draft=small, device="cpu", tokenizer=False, prefill_chunk=64)
    assert eng.has_draft and eng.draft_info["hidden_size"] == 32
    rng = np.random.default_rng(4)
    draft_bytes = []
    for L in (1, 33, 700):
        ids = rng.integers(0, 512, size=L).tolist()
        plain = eng.generate(ids, max_new_tokens=48, ignore_eos=True, speculative=False)
        for tree in ([4, 16, 16, 16, 16], [1] * 6, "auto"):
            spec = eng.generate(ids, max_new_tokens=48, ignore_eos=True, tree=tree)
            assert spec.tokens == plain.tokens, f"prompt length {L}, tree {tree}"
        draft_bytes.append(spec.stats["draft_cache_bytes"])
    assert draft_bytes[0] > 0
    # The target drafting for itself as a model: every greedy proposal holds, full depth each round.
    own = Engine(random_qwen2_dir, draft=random_qwen2_dir, device="cpu", tokenizer=False)
    ids = list(range(3, 60))
    out = own.generate(ids, max_new_tokens=1 + 5 * 4, ignore_eos=True, tree=[1, 1, 1])
    assert out.tokens == own.generate(ids, max_new_tokens=21, ignore_eos=True, speculative=False).tokens
    assert out.stats["mean_accepted"] == 4.0


def test_a_draft_model_of_another_tokenizer_is_rejected(random_qwen2_dir, smollm2_gguf):
    with pytest.raises(ValueError, match="tokenizer"):
        Engine(random_qwen2_dir, draft=smollm2_gguf, device="cpu", tokenizer=False)


def test_draft_that_does_not_fit_the_target_is_rejected(random_qwen2_dir, smollm2_gguf, smol_draft):
    with pytest.raises(ValueError, match="hidden_size"):
        Engine(random_qwen2_dir, draft=smol_draft, device="cpu", tokenizer=False)


def test_per_call_tree_override_and_plain_switch(random_qwen2_dir, qwen_draft):
    eng = Engine(random_qwen2_dir, draft=qwen_draft, device="cpu", tokenizer=False, tree=[2, 2])
    assert eng.tree == [2, 2]
    ids = [5, 6, 7]
    a = eng.generate(ids, max_new_tokens=10, ignore_eos=True)
    b = eng.generate(ids, max_new_tokens=10, ignore_eos=True, tree=[6, 6, 6])
    c = eng.generate(ids, max_new_tokens=10, ignore_eos=True, speculative=False)
    assert a.tokens == b.tokens == c.tokens
    assert len(a.stats["accepted_histogram"]) == 4 and len(b.stats["accepted_histogram"]) == 5
    with pytest.raises(ValueError, match="tree"):
        eng.generate(ids, tree=[0])


def test_auto_tree_is_exact_and_mixes_plain_and_tree_rounds(random_qwen2_dir, qwen_draft):
    """tree="auto": every round runs a sub-shape of the draft's tree or a plain step (chosen from
    measured round costs); the tokens are plain greedy's either way, sampling keeps its seed."""
    eng = Engine(random_qwen2_dir, draft=qwen_draft, device="cpu", tokenizer=False)
    assert not eng.speculative_default  # on the CPU auto is opt-in
    rng = np.random.default_rng(3)
    for n in [5, 40, 200]:
        ids = [int(x) for x in rng.integers(3, 120, n)]
        plain = eng.generate(ids, max_new_tokens=48, ignore_eos=True, speculative=False)
        auto = eng.generate(ids, max_new_tokens=48, ignore_eos=True, tree="auto")
        assert auto.tokens == plain.tokens
        st = auto.stats
        assert st.speculative and st.rounds >= 1 and 0 <= st.plain_rounds <= st.rounds
        assert sum(k * c for k, c in enumerate(st.accepted_histogram)) == st.new_tokens - 1
    sampled = eng.generate(ids, max_new_tokens=12, temperature=0.9, seed=11, tree="auto", ignore_eos=True).tokens
    assert len(sampled) == 12 and all(0 <= t < 512 for t in sampled)
    # An engine whose default is auto; a bad string is a clear error.
    auto_eng = Engine(random_qwen2_dir, draft=qwen_draft, device="cpu", tokenizer=False, tree="auto")
    assert auto_eng.speculative_default
    assert auto_eng.generate(ids, max_new_tokens=20, ignore_eos=True).tokens == plain.tokens[:20]
    with pytest.raises(TypeError, match="auto"):
        eng.generate(ids, tree="automatic")


def test_auto_tree_prior_weight_from_the_environment(random_qwen2_dir, qwen_draft, monkeypatch):
    # LONGSPEC_AUTO_TAU_PRIOR_ROUNDS (for measuring the policy on a device) is read when an engine's
    # policy is made: a bad value is one clear error, a good one keeps the output exact.
    ids = list(range(3, 60))
    monkeypatch.setenv("LONGSPEC_AUTO_TAU_PRIOR_ROUNDS", "many")
    eng = Engine(random_qwen2_dir, draft=qwen_draft, device="cpu", tokenizer=False)
    with pytest.raises(ValueError, match="LONGSPEC_AUTO_TAU_PRIOR_ROUNDS"):
        eng.generate(ids, max_new_tokens=8, tree="auto")
    monkeypatch.setenv("LONGSPEC_AUTO_TAU_PRIOR_ROUNDS", "32")
    plain = eng.generate(ids, max_new_tokens=24, ignore_eos=True, speculative=False)
    assert eng.generate(ids, max_new_tokens=24, ignore_eos=True, tree="auto").tokens == plain.tokens


def test_best_n_probe_counts_what_a_pruned_tree_would_emit(smol_spec, monkeypatch):
    # LONGSPEC_BEST_N_PROBE: per N, the tokens the rounds would have emitted verifying only their N
    # best nodes. N >= the tree's nodes is the round itself; N = 1 (the root) is the bonus alone.
    ids = smol_spec.encode(_texts()[7])
    out = smol_spec.generate(ids, max_new_tokens=24, ignore_eos=True, tree=[2, 2, 2])
    assert out.stats["best_n_tokens"] == {}
    monkeypatch.setenv("LONGSPEC_BEST_N_PROBE", "1,4,7,1000")
    probed = smol_spec.generate(ids, max_new_tokens=24, ignore_eos=True, tree=[2, 2, 2])
    assert probed.tokens == out.tokens  # the probe only reads
    s = probed.stats
    made = sum(k * n for k, n in enumerate(s["accepted_histogram"]))
    best = s["best_n_tokens"]
    assert sorted(best) == [1, 4, 7, 1000]
    assert best[1000] == best[7] == made  # 7 nodes: the whole tree
    assert best[1] == s["rounds"] and best[1] <= best[4] <= best[7]
    monkeypatch.setenv("LONGSPEC_BEST_N_PROBE", "4,x")
    with pytest.raises(ValueError, match="LONGSPEC_BEST_N_PROBE"):
        smol_spec.generate(ids, max_new_tokens=4, tree=[2, 2, 2])
    monkeypatch.delenv("LONGSPEC_BEST_N_PROBE")
    assert smol_spec.generate(ids, max_new_tokens=4, ignore_eos=True, tree=[2, 2, 2]).tokens == out.tokens[:4]
