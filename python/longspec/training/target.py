"""The frozen target in PyTorch (Hugging Face transformers): loading from an HF directory or a
GGUF file, and its last-layer K/V as the engine caches them (keys after RoPE)."""
from __future__ import annotations

import os
import warnings

import torch


def load_target(path: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """AutoModelForCausalLM for an HF checkpoint directory or a .gguf file, frozen, in eval mode."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import transformers

    transformers.logging.set_verbosity_error()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if os.path.isdir(path):
            model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        else:
            model = transformers.AutoModelForCausalLM.from_pretrained(
                os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path), dtype=dtype)
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def rope_of(model) -> tuple[torch.Tensor, float]:
    """The target's RoPE inverse frequencies and attention scaling (what its cache was built with)."""
    rotary = model.model.rotary_emb
    return rotary.inv_freq.detach().float().cpu(), float(getattr(rotary, "attention_scaling", 1.0))


def _last_layer_kv(cache):
    if hasattr(cache, "layers"):  # transformers >= 4.56 Cache API
        layer = cache.layers[-1]
        return layer.keys, layer.values
    if hasattr(cache, "key_cache"):
        return cache.key_cache[-1], cache.value_cache[-1]
    return cache[-1][0], cache[-1][1]


@torch.no_grad()
def target_forward(model, input_ids: torch.Tensor, position_ids: torch.Tensor, with_hidden: bool = False):
    """Runs the frozen target; returns (last-layer K, last-layer V), each [B, kv_heads, T, hd], and
    with_hidden=True adds its final hidden states [B, T, hidden] (after the final norm, i.e. what
    the LM head reads)."""
    import transformers

    cache = transformers.DynamicCache()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model.model(input_ids=input_ids, position_ids=position_ids, past_key_values=cache, use_cache=True)
    k, v = _last_layer_kv(cache)
    if with_hidden:
        return k, v, out.last_hidden_state
    return k, v
