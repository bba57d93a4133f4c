"""GPU tests (marker `gpu`): skipped cleanly on machines without a CUDA device.

The CUDA engine on a random model (device selection, logits against the CPU engine, errors) and
on the real models (greedy against Hugging Face transformers in bf16 on the same GPU, near-ties
logged; speculative == plain with the packaged draft), and the PyTorch draft training. Real model
files: SmolLM2 from the longspec cache (`longspec.models.smollm2_path`), Qwen2.5-Coder-0.5B from
$LONGSPEC_QWEN05_GGUF; a test whose file is absent is skipped, saying so."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import longspec

pytestmark = pytest.mark.gpu

# Largest top-1/top-2 logit gap (HF bf16) at which a greedy divergence counts as a bf16 near-tie:
# both sides round activations to bf16 (8 bits of mantissa) at different points, which moves a
# logit of magnitude ~20 by ~0.1-0.3.
NEAR_TIE = 0.5


def test_build_sees_the_cuda_device():
    assert longspec.cuda_available()
    torch = pytest.importorskip("torch")
    assert torch.cuda.is_available()


def _rel_l2(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_cuda_engine_on_a_random_model(tmp_path):
    pytest.importorskip("torch")
    from conftest import make_random_qwen2

    target = make_random_qwen2(str(tmp_path / "t"), seed=3, vocab=1000, hidden=256, layers=2, heads=4, kv_heads=2,
                               inter=512, max_pos=4096, shard=False)
    gpu = longspec.Engine(target, draft=None, device="cuda", tokenizer=False)
    assert gpu.device == "cuda"
    assert longspec.Engine(target, draft=None, device="auto", tokenizer=False).device == "cuda"
    cpu = longspec.Engine(target, draft=None, device="cpu", tokenizer=False)
    rng = np.random.default_rng(0)
    for n in (7, 300, 1500):
        prompt = rng.integers(0, 1000, n).tolist()
        assert _rel_l2(gpu.prompt_logits(prompt), cpu.prompt_logits(prompt)) < 0.05, n
    out = gpu.generate(prompt, max_new_tokens=40, ignore_eos=True)
    assert len(out.tokens) == 40 and out.stats["tokens_per_s"] > 0
    with pytest.raises(ValueError):
        gpu.generate([1, 5000], max_new_tokens=4)
    assert gpu.generate(prompt[:10], max_new_tokens=3, ignore_eos=True).tokens  # still usable


def test_gpu_a_larger_tree_than_before_on_the_same_engine(tmp_path):
    """A request may ask for a larger tree (more rows, more levels) than any earlier request on
    the engine: the target's step buffers grow, and graphs captured over the old ones must not
    replay (they once did: an illegal address on the GPU at the second request). Every tree's
    greedy output equals plain greedy's, twice each, growing and shrinking."""
    pytest.importorskip("torch")
    from conftest import make_random_qwen2

    target = make_random_qwen2(str(tmp_path / "t"), seed=5, vocab=1000, hidden=256, layers=2, heads=4, kv_heads=2,
                               inter=512, max_pos=4096, shard=False)
    draft = longspec.random_draft(target, tmp_path / "d", seed=2, window=64)
    eng = longspec.Engine(target, draft=draft, device="cuda", tokenizer=False)
    prompt = np.random.default_rng(1).integers(0, 1000, 700).tolist()
    plain = eng.generate(prompt, max_new_tokens=40, ignore_eos=True, speculative=False).tokens
    for tree in ([1, 1], [4, 16, 16, 16, 16], [8, 32, 32, 32, 32], [4, 16, 16, 16, 16, 16, 16], [2, 2],
                 [16, 32, 32, 32, 32]):
        for _ in range(2):
            out = eng.generate(prompt, max_new_tokens=40, ignore_eos=True, tree=tree)
            assert out.tokens == plain, tree
    assert eng.generate(prompt, max_new_tokens=40, ignore_eos=True, speculative=False).tokens == plain


def test_gpu_a_draft_with_a_narrower_mlp_is_exact(tmp_path):
    """A draft whose MLP is narrower than the target's (mlp_intermediate_size, an odd width) runs its
    levels on the GPU with the same kernels at other shapes: greedy speculative == plain."""
    pytest.importorskip("torch")
    from conftest import make_random_qwen2

    target = make_random_qwen2(str(tmp_path / "t"), seed=6, vocab=1000, hidden=256, layers=2, heads=4, kv_heads=2,
                               inter=512, max_pos=4096, shard=False)
    draft = longspec.random_draft(target, tmp_path / "d", seed=3, window=64, mlp_intermediate_size=200)
    eng = longspec.Engine(target, draft=draft, device="cuda", tokenizer=False)
    assert eng.draft_info["intermediate_size"] == 200
    prompt = np.random.default_rng(2).integers(0, 1000, 900).tolist()
    plain = eng.generate(prompt, max_new_tokens=40, ignore_eos=True, speculative=False).tokens
    for tree in ([4, 4], [6, 6, 6], [4, 16, 16, 16, 16]):
        assert eng.generate(prompt, max_new_tokens=40, ignore_eos=True, tree=tree).tokens == plain, tree


def test_gpu_round_graph_pieces_change_no_bit(tmp_path, monkeypatch):
    """The device round launches the draft as one graph per level and the verification in
    pieces of layers (2, then 4, ... ; 7 layers: [0, 2) and [2, 7)), each launched while the
    previous ones run. Every setting of the two switches gives the same tokens (plain greedy's)
    and the same rounds, over trees deep and shallow."""
    pytest.importorskip("torch")
    from conftest import make_random_qwen2

    target = make_random_qwen2(str(tmp_path / "t"), seed=8, vocab=1000, hidden=256, layers=7, heads=4, kv_heads=2,
                               inter=512, max_pos=4096, shard=False)
    draft = longspec.random_draft(target, tmp_path / "d", seed=4, window=64)
    prompt = np.random.default_rng(3).integers(0, 1000, 900).tolist()
    results = {}
    for levels, pieces in (("1", "1"), ("0", "0"), ("1", "0"), ("0", "1")):
        monkeypatch.setenv("LONGSPEC_DRAFT_LEVEL_GRAPHS", levels)
        monkeypatch.setenv("LONGSPEC_VERIFY_GRAPH_PIECES", pieces)
        eng = longspec.Engine(target, draft=draft, device="cuda", tokenizer=False)
        plain = eng.generate(prompt, max_new_tokens=48, ignore_eos=True, speculative=False).tokens
        for tree in ([4, 4, 4, 2], [1], [4, 16, 16, 16, 16]):
            for _ in range(2):  # the second replays the graphs the first captured
                out = eng.generate(prompt, max_new_tokens=48, ignore_eos=True, tree=tree)
                assert out.tokens == plain, (levels, pieces, tree)
                results.setdefault(tuple(tree), set()).add(tuple(out.stats["accepted_histogram"]))
    assert all(len(histograms) == 1 for histograms in results.values()), results


def _hf_bf16_cuda(path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                                  dtype=torch.bfloat16)
    return model.to("cuda").eval()


def _long_prompts(tokenizer, lengths):
    """Real text (CPython sources, one file per prompt) cut to the given token counts."""
    import sysconfig

    lib = sysconfig.get_paths()["stdlib"]
    names = ["argparse.py", "textwrap.py", "dataclasses.py", "inspect.py", "typing.py"]
    out = []
    for name, n in zip(names, lengths):
        ids = tokenizer.encode(open(os.path.join(lib, name), encoding="utf-8").read())
        out.append(ids[:n])
    return out


def _greedy_parity(path, lengths, new_tokens, report):
    """GPU greedy vs HF bf16 greedy on the same GPU: identical, or diverging only at a bf16 near-tie
    (HF's own top-1/top-2 gap at the divergence <= NEAR_TIE). Returns the per-prompt records."""
    torch = pytest.importorskip("torch")
    eng = longspec.Engine(path, draft=None, device="cuda")
    hf = _hf_bf16_cuda(path)
    records = []
    for ids in _long_prompts(eng.tokenizer, lengths):
        ours = eng.generate(ids, max_new_tokens=new_tokens, ignore_eos=True).tokens
        with torch.no_grad():
            x = torch.tensor([ids], device="cuda")
            theirs = hf.generate(x, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                 pad_token_id=0)[0, len(ids):].tolist()
        first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
        rec = {"prompt_tokens": len(ids), "identical": first is None, "first_divergence": first}
        if first is not None:
            with torch.no_grad():
                prefix = torch.tensor([ids + theirs[:first]], device="cuda")
                logits = hf(prefix).logits[0, -1].float()
            top = torch.topk(logits, 2).values
            rec["hf_top2_gap"] = float(top[0] - top[1])
            rec["ours_logit_gap_at_hf_pick"] = float(logits[theirs[first]] - logits[ours[first]])
        records.append(rec)
    report(records)
    for rec in records:
        assert rec["identical"] or rec["ours_logit_gap_at_hf_pick"] <= NEAR_TIE, rec
    return records


def _print(name):
    def report(records):
        for r in records:
            print(f"{name}: {r}")
    return report


def _smollm2():
    from longspec.models import smollm2_path

    try:
        return smollm2_path(download=False)
    except FileNotFoundError:
        pytest.skip("SmolLM2 GGUF not in the longspec cache")


def _qwen05():
    path = os.environ.get("LONGSPEC_QWEN05_GGUF", "")
    if not os.path.isfile(path):
        pytest.skip("LONGSPEC_QWEN05_GGUF does not name the Qwen2.5-Coder-0.5B GGUF")
    return path


def test_gpu_greedy_matches_hf_bf16_on_smollm2():
    _greedy_parity(_smollm2(), [1500, 3000, 6000, 7000], 64, _print("smollm2"))


def test_gpu_greedy_matches_hf_bf16_on_qwen_coder_05b():
    _greedy_parity(_qwen05(), [2000, 8000, 16000], 64, _print("qwen2.5-coder-0.5b"))


def test_gpu_logits_track_the_cpu_engine_on_real_models():
    for path in [_smollm2()] + ([os.environ["LONGSPEC_QWEN05_GGUF"]] if os.path.isfile(
            os.environ.get("LONGSPEC_QWEN05_GGUF", "")) else []):
        gpu = longspec.Engine(path, draft=None, device="cuda")
        cpu = longspec.Engine(path, draft=None, device="cpu")
        ids = _long_prompts(gpu.tokenizer, [1200])[0]
        lg, lc = gpu.prompt_logits(ids), cpu.prompt_logits(ids)
        err = _rel_l2(lg, lc)
        print(f"{os.path.basename(path)}: relative L2 of GPU bf16 vs CPU fp32 logits = {err:.4f}")
        # bf16 weights, activations and K/V against fp32: a few percent of the logits' norm.
        assert err < 0.05
        top = np.argsort(lc)[::-1]
        assert int(np.argmax(lg)) == int(top[0]) or lc[top[0]] - lc[int(np.argmax(lg))] <= NEAR_TIE


def _many_prompts(tokenizer, count, lengths):
    """`count` prompts of real text (CPython sources, one file each) cut to lengths cycling through `lengths`."""
    import sysconfig

    lib = sysconfig.get_paths()["stdlib"]
    names = sorted(n for n in os.listdir(lib) if n.endswith(".py") and os.path.getsize(os.path.join(lib, n)) > 60000)
    out = []
    for i, name in enumerate(names[:count]):
        ids = tokenizer.encode(open(os.path.join(lib, name), encoding="utf-8", errors="replace").read())
        out.append(ids[:lengths[i % len(lengths)]])
    return out


def test_gpu_speculative_equals_plain_on_smollm2_with_its_draft():
    """The device round (tree grown on the GPU, greedy acceptance and commit on the GPU) emits
    exactly plain greedy's tokens: 20 long prompts x 256 tokens, the default tree and tree="auto"."""
    eng = longspec.Engine(_smollm2(), device="cuda")  # draft="auto": the packaged draft
    assert eng.has_draft and eng.speculative_default  # on a GPU the default decodes speculatively
    prompts = _many_prompts(eng.tokenizer, 20, [1000, 2500, 4000, 6000, 7500])
    assert len(prompts) == 20
    taus, plain_rounds = [], 0
    for ids in prompts:
        plain = eng.generate(ids, max_new_tokens=256, ignore_eos=True, speculative=False)
        spec = eng.generate(ids, max_new_tokens=256, ignore_eos=True, tree=eng.tree)
        auto = eng.generate(ids, max_new_tokens=256, ignore_eos=True)  # the GPU default: tree="auto"
        assert spec.tokens == plain.tokens
        assert auto.tokens == plain.tokens
        assert auto.stats.speculative
        taus.append(round(spec.stats.mean_accepted, 2))
        plain_rounds += auto.stats.plain_rounds
    print(f"smollm2: speculative == plain == auto on the GPU over {len(prompts)} prompts x 256 tokens; "
          f"tau {taus}; auto plain rounds {plain_rounds}")
    assert min(taus) > 1.0


def test_gpu_verify_nodes_equals_plain_and_the_probe_on_smollm2():
    """verify_nodes on the GPU (the round reads its grown tree back, verifies the best subtree, maps
    the accepted path back for the draft's commit): plain greedy's tokens; and where the probe says
    every round of the whole tree accepted within its best N + 1 nodes, the very same rounds."""
    eng = longspec.Engine(_smollm2(), device="cuda")
    tree, candidates = [4, 16, 16, 16, 16], [20, 30, 40, 50, 60, 64, 67]
    same_rounds = 0
    for ids in _many_prompts(eng.tokenizer, 6, [2000, 7000]):
        plain = eng.generate(ids, max_new_tokens=128, ignore_eos=True, speculative=False)
        for grown, n in ((tree, 20), ([16, 32, 32, 32, 32], 69)):
            assert eng.generate(ids, max_new_tokens=128, ignore_eos=True, tree=grown, verify_nodes=n).tokens == plain.tokens
        os.environ["LONGSPEC_BEST_N_PROBE"] = ",".join(str(n + 1) for n in candidates)
        try:
            full = eng.generate(ids, max_new_tokens=128, ignore_eos=True, tree=tree)
        finally:
            del os.environ["LONGSPEC_BEST_N_PROBE"]
        made = sum(k * c for k, c in enumerate(full.stats["accepted_histogram"]))
        within = [n for n in candidates if full.stats["best_n_tokens"][n + 1] == made]
        if within:
            pruned = eng.generate(ids, max_new_tokens=128, ignore_eos=True, tree=tree, verify_nodes=within[0])
            assert pruned.tokens == plain.tokens
            assert pruned.stats["accepted_histogram"] == full.stats["accepted_histogram"]
            same_rounds += 1
    assert same_rounds >= 1, "no prompt had every accepted path within the best 68 nodes"


def test_gpu_speculative_equals_plain_on_qwen_coder_at_16k():
    path = _qwen05()
    draft = os.path.join(os.path.dirname(__file__), "..", "..", "models", "qwen2.5-coder-0.5b-instruct-longspec")
    eng = longspec.Engine(path, draft=draft, device="cuda", max_context=20000)
    import sysconfig

    lib = sysconfig.get_paths()["stdlib"]
    text = "".join(open(os.path.join(lib, n), encoding="utf-8").read() for n in ["typing.py", "inspect.py", "argparse.py"])
    ids = eng.tokenizer.encode(text)
    assert len(ids) >= 17000
    taus = []
    for n in [16384, 17000]:
        plain = eng.generate(ids[:n], max_new_tokens=128, ignore_eos=True, speculative=False)
        spec = eng.generate(ids[:n], max_new_tokens=128, ignore_eos=True, tree=eng.tree)
        assert spec.tokens == plain.tokens
        taus.append(round(spec.stats.mean_accepted, 2))
    print(f"qwen2.5-coder-0.5b: speculative == plain on the GPU at 16k; tau {taus}")


def test_gpu_speculative_sampling_follows_the_target_law():
    """Sampling through the device round (tree grown on the GPU, the lossless rule on the host from
    the GPU's verified logits): the first token a round emits, given the prefill's sampled token a,
    is distributed as softmax(target logits after prompt + a / T) (chi-square over the likely
    tokens)."""
    from scipy import stats as sst

    eng = longspec.Engine(_smollm2(), device="cuda")
    ids = _long_prompts(eng.tokenizer, [1200])[0]
    temp = 0.8
    firsts, seconds = [], []
    for seed in range(500):
        out = eng.generate(ids, max_new_tokens=2, temperature=temp, seed=seed, tree=eng.tree)
        firsts.append(out.tokens[0])
        seconds.append(out.tokens[1])
    a = max(set(firsts), key=firsts.count)
    sample = [t2 for t1, t2 in zip(firsts, seconds) if t1 == a]
    assert len(sample) >= 150, f"the mode of the first token came {len(sample)} times"
    logits = np.asarray(eng.prompt_logits(ids + [a]), dtype=np.float64) / temp
    p = np.exp(logits - logits.max())
    p /= p.sum()
    likely = [int(t) for t in np.argsort(p)[::-1][:6]]
    n = len(sample)
    obs = [sample.count(t) for t in likely] + [n - sum(sample.count(t) for t in likely)]
    exp = [n * p[t] for t in likely] + [n * max(1e-9, 1 - sum(p[t] for t in likely))]
    keep = [i for i, e in enumerate(exp) if e >= 5]  # chi-square needs expected counts >= 5
    chi2, pval = sst.chisquare([obs[i] for i in keep], [exp[i] / sum(exp[j] for j in keep) * sum(obs[j] for j in keep)
                                                        for i in keep])
    print(f"sampling through the GPU round: {n} draws, chi2 {chi2:.2f}, p {pval:.3f}, observed {obs}, "
          f"expected {[round(e, 1) for e in exp]}")
    assert pval > 1e-3


def test_training_on_cuda_bf16_lowers_the_loss(tmp_path):
    torch = pytest.importorskip("torch")
    from conftest import make_random_qwen2
    from longspec.training.train import DraftTrainer, TrainConfig

    target = make_random_qwen2(str(tmp_path / "t"), seed=7, vocab=128, hidden=64, layers=2, heads=4, kv_heads=2,
                               inter=128, max_pos=4096, shard=False)
    perm = np.random.default_rng(1234).permutation(128)
    data = np.zeros((64, 128), dtype=np.uint32)
    rng = np.random.default_rng(0)
    for i in range(64):
        x = int(rng.integers(0, 128))
        for j in range(128):
            data[i, j], x = x, int(perm[x])
    cfg = TrainConfig(stage1_steps=80, seq_len=128, batch_size=8, lr1=1e-2, window=32, device="cuda", save_every=0,
                      log_every=10, init_std=0.05)
    trainer = DraftTrainer(target, str(tmp_path / "run"), cfg)
    assert trainer.amp and next(trainer.target.parameters()).dtype == torch.bfloat16
    before = trainer.evaluate(data[:8])
    trainer.train(data, None, progress=False)
    after = trainer.evaluate(data[:8])
    assert after < before - 1.5, (before, after)
    # The bf16 checkpoint loads in the engine and speculates losslessly.
    eng = longspec.Engine(target, draft=str(tmp_path / "run" / "draft"), device="cpu", tokenizer=False)
    prompt = data[3][:50].tolist()
    assert (eng.generate(prompt, max_new_tokens=20, ignore_eos=True, tree=[2, 2]).tokens ==
            eng.generate(prompt, max_new_tokens=20, ignore_eos=True, speculative=False).tokens)


def test_torch_draft_bf16_on_cuda_tracks_fp32_on_cpu(tmp_path):
    torch = pytest.importorskip("torch")
    from longspec.training.draft_torch import LongSpecDraft, cross_lag_mask

    cfg = {"target": {"hidden_size": 64, "num_heads": 4, "num_kv_heads": 2, "head_dim": 16, "intermediate_size": 96,
                      "rms_norm_eps": 1e-6}, "window": 32, "attention_bias": True, "final_norm": False}
    inv = 1.0 / (10000 ** (torch.arange(0, 16, 2).float() / 16))
    d = LongSpecDraft(cfg, inv)
    d.init_weights(0.05, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    h0 = torch.randn(2, 100, 64, generator=g)
    k = torch.randn(2, 2, 100, 16, generator=g)
    v = torch.randn(2, 2, 100, 16, generator=g)
    pos = torch.arange(100)[None].expand(2, -1) + 5000
    mask = cross_lag_mask(100, 2, "cpu")
    ref = d(h0, pos, k, v, mask)
    dc = LongSpecDraft(cfg, inv).cuda()
    dc.load_state_dict(d.state_dict())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = dc(h0.cuda(), pos.cuda(), k.cuda(), v.cuda(), mask.cuda()).float().cpu()
    rel = (out - ref).norm() / ref.norm()
    assert rel < 2e-2, rel
