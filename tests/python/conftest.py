"""Shared fixtures: the real SmolLM2-135M-Instruct GGUF, a small random Qwen2 checkpoint, and
Hugging Face transformers models (torch CPU, fp32) as the independent reference."""
from __future__ import annotations

import os
import warnings

import pytest

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _has_cuda() -> bool:
    try:
        import longspec

        return longspec.cuda_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def smollm2_gguf() -> str:
    from longspec.models import smollm2_path

    return smollm2_path()


@pytest.fixture(scope="session")
def hf_smollm2(smollm2_gguf):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.AutoModelForCausalLM.from_pretrained(
            os.path.dirname(smollm2_gguf), gguf_file=os.path.basename(smollm2_gguf), dtype=torch.float32)
    model.eval()
    return model


def make_random_qwen2(path: str, *, seed: int = 0, vocab: int = 512, hidden: int = 64, layers: int = 2,
                      heads: int = 4, kv_heads: int = 2, inter: int = 160, tie: bool = False,
                      max_pos: int = 4096, shard: bool = True) -> str:
    """A randomly initialised Qwen2 (q/k/v biases, untied embeddings) saved as safetensors."""
    import torch
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
                                   num_hidden_layers=layers, num_attention_heads=heads,
                                   num_key_value_heads=kv_heads, max_position_embeddings=max_pos,
                                   rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=tie,
                                   bos_token_id=1, eos_token_id=2)
    model = transformers.Qwen2ForCausalLM(cfg).to(torch.float32)
    with torch.no_grad():
        # Non-trivial biases and norm weights so that every parameter matters.
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.mul_(2.0)
    model.save_pretrained(path, safe_serialization=True, max_shard_size="200KB" if shard else "10GB")
    return path


@pytest.fixture(scope="session")
def random_qwen2_dir(tmp_path_factory) -> str:
    pytest.importorskip("torch")
    return make_random_qwen2(str(tmp_path_factory.mktemp("qwen2_random")))


@pytest.fixture(scope="session")
def tiny_chat_model_dir(tmp_path_factory, smollm2_gguf) -> str:
    """A random Qwen2 (hidden 256, 4 layers: ~4 ms a token on two cores, so a long generation is
    still running while a test acts on it) carrying SmolLM2's real tokenizer and chat template:
    fast text and chat tests. EOS is <|im_end|> (id 2)."""
    pytest.importorskip("torch")
    from longspec.tokenizer import Tokenizer

    path = make_random_qwen2(str(tmp_path_factory.mktemp("tiny_chat")), vocab=49152, hidden=256, layers=4,
                             heads=4, kv_heads=2, inter=512, shard=False)
    Tokenizer.from_checkpoint(smollm2_gguf).hf.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def hf_random_qwen2(random_qwen2_dir):
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(random_qwen2_dir, dtype=torch.float32)
    model.eval()
    return model


def hf_greedy(model, prompt_ids: list[int], n: int) -> list[int]:
    """Plain greedy decoding with the HF model, never stopping at EOS (n tokens exactly)."""
    import torch

    out = []
    with torch.no_grad():
        ids = torch.tensor([prompt_ids])
        res = model(ids, use_cache=True)
        past = res.past_key_values
        tok = int(torch.argmax(res.logits[0, -1]))
        out.append(tok)
        for _ in range(n - 1):
            res = model(torch.tensor([[tok]]), past_key_values=past, use_cache=True)
            past = res.past_key_values
            tok = int(torch.argmax(res.logits[0, -1]))
            out.append(tok)
    return out


def hf_last_logits(model, prompt_ids: list[int]):
    import torch

    with torch.no_grad():
        return model(torch.tensor([prompt_ids])).logits[0, -1].double().numpy()
