"""The LongSpec draft layer in PyTorch, parameter for parameter the C++ draft (cpp/src/spec/).

Names of parameters equal the checkpoint's tensor names, so ``state_dict()`` is a draft
checkpoint. The embedding and the LM head are the target's (frozen, passed in by the caller).

    h1 = h0 + SelfAttn(RMSNorm_a(h0))    sliding window W by position, causal, GQA, RoPE, q/k/v bias
    h2 = h1 + CrossAttn(RMSNorm_b(h1))   q = RoPE(Wq x); K/V = the target's last-layer cache (post-RoPE)
    h3 = h2 + SwiGLU(RMSNorm_c(h2))      logits = lm_head([final_norm](h3))
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight.float() * x).to(dtype)


def rope_cos_sin(positions: torch.Tensor, inv_freq: torch.Tensor, scaling: float):
    """cos/sin [B, T, head_dim] (rotate-half layout) for integer positions [B, T]."""
    angles = positions.float()[..., None] * inv_freq.float()[None, None, :]
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos() * scaling, emb.sin() * scaling


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, heads, T, hd]; cos/sin [B, T, hd]."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos[:, None] + rotated * sin[:, None]).to(x.dtype)


def masked_attention(q, k, v, mask):
    """Softmax attention with a boolean mask [B or 1, T, Tk] (True = attend); GQA by repeating
    kv heads. Rows without any visible key return 0 (as the engine does for kv_len == 0)."""
    n_rep = q.shape[1] // k.shape[1]
    if n_rep > 1:
        k = k.repeat_interleave(n_rep, dim=1)
        v = v.repeat_interleave(n_rep, dim=1)
    any_key = mask.any(dim=-1)  # [B, T]
    safe = mask.clone()
    safe[..., 0] |= ~any_key  # give empty rows one key, then zero them
    out = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=safe[:, None])
    return out * any_key[:, None, :, None].to(out.dtype)


class DraftSelfAttention(nn.Module):
    def __init__(self, hidden, heads, kv_heads, head_dim, bias):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=bias)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=bias)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=bias)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        out = masked_attention(q, k, v, mask)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, -1))


class DraftCrossAttention(nn.Module):
    def __init__(self, hidden, heads, head_dim, bias):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=bias)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=False)

    def forward(self, x, cos, sin, target_k, target_v, mask):
        B, T, _ = x.shape
        q = apply_rope(self.q_proj(x).view(B, T, self.heads, self.head_dim).transpose(1, 2), cos, sin)
        out = masked_attention(q, target_k, target_v, mask)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, -1))


class DraftMLP(nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=False)
        self.up_proj = nn.Linear(hidden, inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LongSpecDraft(nn.Module):
    """The draft layer. ``config`` is a draft config.json dict (see longspec.drafts)."""

    def __init__(self, config: dict, inv_freq: torch.Tensor, attention_scaling: float = 1.0):
        super().__init__()
        t = config["target"]
        H, heads, kv, hd = t["hidden_size"], t["num_heads"], t["num_kv_heads"], t["head_dim"]
        eps, bias = float(t["rms_norm_eps"]), bool(config["attention_bias"])
        self.config = config
        self.window = int(config["window"])
        self.self_attn_norm = RMSNorm(H, eps)
        self.self_attn = DraftSelfAttention(H, heads, kv, hd, bias)
        self.cross_attn_norm = RMSNorm(H, eps)
        self.cross_attn = DraftCrossAttention(H, heads, hd, bias)
        self.mlp_norm = RMSNorm(H, eps)
        self.mlp = DraftMLP(H, config.get("mlp_intermediate_size") or t["intermediate_size"])
        self.final_norm = RMSNorm(H, eps) if config.get("final_norm") else None
        self.register_buffer("inv_freq", inv_freq.detach().float().clone(), persistent=False)
        self.attention_scaling = float(attention_scaling)

    def init_weights(self, std: float = 0.02, generator: torch.Generator | None = None):
        for name, p in self.named_parameters():
            with torch.no_grad():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                elif name.endswith(".bias"):
                    p.zero_()
                else:
                    p.normal_(0.0, std, generator=generator)

    def self_attention_mask(self, positions: torch.Tensor) -> torch.Tensor:
        """[B, T, T]: key j visible to query i iff j <= i and pos_i - W < pos_j (window by position,
        as the engine's ring buffer)."""
        T = positions.shape[-1]
        causal = torch.ones(T, T, dtype=torch.bool, device=positions.device).tril()
        in_window = positions[:, None, :] > positions[:, :, None] - self.window
        return causal[None] & in_window

    def forward(self, h0, positions, target_k, target_v, cross_mask):
        """h0 [B, T, H] token embeddings; positions [B, T]; target_k/v [B, kv_heads, Tk, hd]
        (post-RoPE, as the target caches them); cross_mask [B or 1, T, Tk] bool.
        Returns h3 (pre-LM-head hidden states, final norm applied when configured)."""
        cos, sin = rope_cos_sin(positions, self.inv_freq, self.attention_scaling)
        cos, sin = cos.to(h0.dtype), sin.to(h0.dtype)
        h1 = h0 + self.self_attn(self.self_attn_norm(h0), cos, sin, self.self_attention_mask(positions))
        h2 = h1 + self.cross_attn(self.cross_attn_norm(h1), cos, sin, target_k, target_v, cross_mask)
        h3 = h2 + self.mlp(self.mlp_norm(h2))
        return self.final_norm(h3) if self.final_norm is not None else h3

    # ------------------------------------------------------------------------------------
    def export_tensors(self) -> dict:
        """Checkpoint tensors as float32 numpy arrays."""
        return {k: v.detach().float().cpu().numpy() for k, v in self.state_dict().items()}

    @classmethod
    def from_checkpoint(cls, path, inv_freq, attention_scaling=1.0, device="cpu"):
        import json
        import os

        from safetensors.torch import load_file

        from ..drafts import draft_weight_files

        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
        model = cls(config, torch.as_tensor(inv_freq), attention_scaling)
        state = {}
        for file in draft_weight_files(path):
            state.update(load_file(file))
        missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
        if missing or unexpected:
            raise ValueError(f"draft checkpoint {path}: missing {missing}, unexpected {unexpected}")
        return model.to(device)


def cross_lag_mask(T: int, lag: int, device) -> torch.Tensor:
    """[1, T, T]: query i sees target keys j <= i - lag (the noisy lag of DESIGN.md section 3)."""
    idx = torch.arange(T, device=device)
    return (idx[None, :] <= idx[:, None] - lag)[None]

