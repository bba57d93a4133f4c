#!/usr/bin/env python3
"""Writes a Hugging Face checkpoint directory (config.json + model.safetensors, bf16) with random
weights in the shape of a known model, for timing (cost per step does not depend on weight values).

    python bench/make_random_checkpoint.py llama3-8b-shape /tmp/ckpt/llama3-8b-shape [--max-position 40960]

Weights are drawn on the GPU when there is one (an 8B model is 16 GB of random numbers).
"""
from __future__ import annotations

import argparse
import json
import os
import time

SHAPES = {
    # Qwen2.5-1.5B: 28 layers, hidden 1536, 12 heads / 2 kv heads of 128, tied embeddings.
    "qwen2.5-1.5b-shape": dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_size=1536,
                               intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                               num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                               rope_theta=1000000.0, rms_norm_eps=1e-6),
    # Qwen2.5-0.5B: 24 layers, hidden 896, 14 heads / 2 kv heads of 64, tied embeddings.
    "qwen2.5-0.5b-shape": dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_size=896,
                               intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                               num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                               rope_theta=1000000.0, rms_norm_eps=1e-6),
    # SmolLM2-135M: 30 layers, hidden 576, 9 heads / 3 kv heads of 64, tied embeddings.
    "smollm2-135m-shape": dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=576,
                               intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                               num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True,
                               rope_theta=100000.0, rms_norm_eps=1e-5),
    # Llama-3-8B: 32 layers, hidden 4096, 32 heads / 8 kv heads of 128, untied.
    "llama3-8b-shape": dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=4096,
                            intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                            num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False,
                            rope_theta=500000.0, rms_norm_eps=1e-5),
}


def tensor_shapes(c: dict) -> dict[str, tuple[int, ...]]:
    h, i, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = h // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    out = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,)}
    if not c["tie_word_embeddings"]:
        out["lm_head.weight"] = (v, h)
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        out.update({p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
                    p + "self_attn.q_proj.weight": (q, h), p + "self_attn.k_proj.weight": (kv, h),
                    p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, q),
                    p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h),
                    p + "mlp.down_proj.weight": (h, i)})
        if c["model_type"] == "qwen2":  # q/k/v biases
            out.update({p + "self_attn.q_proj.bias": (q,), p + "self_attn.k_proj.bias": (kv,),
                        p + "self_attn.v_proj.bias": (kv,)})
    return out


def write(shape: str, out_dir: str, max_position: int, seed: int = 0) -> str:
    import torch
    from safetensors.torch import save_file

    cfg = dict(SHAPES[shape])
    cfg.update(max_position_embeddings=max_position, torch_dtype="bfloat16", bos_token_id=1, eos_token_id=2,
               hidden_act="silu")
    if os.path.isfile(os.path.join(out_dir, "model.safetensors")) and os.path.isfile(os.path.join(out_dir, "config.json")):
        if json.load(open(os.path.join(out_dir, "config.json"))) == cfg:
            return out_dir
    os.makedirs(out_dir, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator(device=dev).manual_seed(seed)
    tensors = {}
    for name, shp in tensor_shapes(cfg).items():
        if name.endswith("norm.weight"):
            t = 1.0 + 0.05 * torch.randn(shp, generator=gen, device=dev)
        else:
            t = 0.02 * torch.randn(shp, generator=gen, device=dev)
        tensors[name] = t.to(torch.bfloat16).cpu()
    save_file(tensors, os.path.join(out_dir, "model.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return out_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shape", choices=sorted(SHAPES))
    ap.add_argument("out_dir")
    ap.add_argument("--max-position", type=int, default=40960)
    args = ap.parse_args()
    t = time.time()
    write(args.shape, args.out_dir, args.max_position)
    print(f"{args.shape} -> {args.out_dir} in {time.time() - t:.1f} s")


if __name__ == "__main__":
    main()
