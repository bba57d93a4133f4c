"""GPU tests (marker `gpu`): skipped cleanly on machines without a CUDA device.

The engine's numeric backend is CPU-only in this release; what runs on the GPU is the build's
device discovery and the PyTorch draft training (bf16 autocast)."""
from __future__ import annotations

import numpy as np
import pytest

import longspec

pytestmark = pytest.mark.gpu


def test_build_sees_the_cuda_device():
    assert longspec.cuda_available()
    torch = pytest.importorskip("torch")
    assert torch.cuda.is_available()


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
