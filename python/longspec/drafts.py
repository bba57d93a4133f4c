"""LongSpec draft checkpoints: writing, random initialisation, and the drafts packaged with
longspec (matched to their exact target file).

A draft checkpoint is a directory with ``config.json`` and ``model.safetensors`` (or, for a draft
too large for one file, the shards ``model.safetensors.index.json`` names, Hugging Face's layout);
the format is documented in ``cpp/src/speculation/draft_config.h``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .models import file_fingerprint, resolve_model_path

FORMAT = "longspec-draft"
FORMAT_VERSION = 1
DEFAULT_WINDOW = 512
DEFAULT_TREE = [4, 16, 16, 16, 16]
PACKAGED_DIR = Path(__file__).resolve().parent / "packaged_drafts"

if TYPE_CHECKING:  # numpy is imported where arrays are made: `import longspec` stays quick
    import numpy as np


def target_config(target: str) -> dict:
    """The target's configuration as the engine reads it (no weights are loaded)."""
    from . import _C

    return _C.model_config(resolve_model_path(target, "target"))


def draft_tensor_shapes(cfg: dict, attention_bias: bool, final_norm: bool,
                        mlp_intermediate_size: int | None = None) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a draft for the target ``cfg``; its MLP is ``mlp_intermediate_size`` wide
    (None: the target's intermediate size, LongSpec's layer)."""
    H, I = cfg["hidden_size"], mlp_intermediate_size or cfg["intermediate_size"]
    Q = cfg["num_heads"] * cfg["head_dim"]
    KV = cfg["num_kv_heads"] * cfg["head_dim"]
    shapes = {
        "self_attn_norm.weight": (H,),
        "self_attn.q_proj.weight": (Q, H),
        "self_attn.k_proj.weight": (KV, H),
        "self_attn.v_proj.weight": (KV, H),
        "self_attn.o_proj.weight": (H, Q),
        "cross_attn_norm.weight": (H,),
        "cross_attn.q_proj.weight": (Q, H),
        "cross_attn.o_proj.weight": (H, Q),
        "mlp_norm.weight": (H,),
        "mlp.gate_proj.weight": (I, H),
        "mlp.up_proj.weight": (I, H),
        "mlp.down_proj.weight": (H, I),
    }
    if attention_bias:
        shapes.update({"self_attn.q_proj.bias": (Q,), "self_attn.k_proj.bias": (KV,),
                       "self_attn.v_proj.bias": (KV,), "cross_attn.q_proj.bias": (Q,)})
    if final_norm:
        shapes["final_norm.weight"] = (H,)
    return shapes


def make_draft_config(cfg: dict, *, window: int = DEFAULT_WINDOW, tree_shape=None, final_norm: bool = False,
                      attention_bias: bool | None = None, mlp_intermediate_size: int | None = None,
                      extra: dict | None = None) -> dict:
    """config.json of a draft for the target ``cfg``. ``mlp_intermediate_size``: a draft MLP narrower
    (or wider) than the target's (None: the target's, the exact LongSpec layer)."""
    if mlp_intermediate_size is not None and (isinstance(mlp_intermediate_size, bool)
                                              or not isinstance(mlp_intermediate_size, int)
                                              or not 1 <= mlp_intermediate_size <= 1 << 20):
        raise ValueError(f"mlp_intermediate_size must be an int in [1, 2^20], got {mlp_intermediate_size!r}")
    if attention_bias is None:
        attention_bias = True  # LongSpec's draft layer uses q/k/v biases (DESIGN.md section 2)
    out = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "target": {k: cfg[k] for k in ("architecture", "hidden_size", "num_heads", "num_kv_heads", "head_dim",
                                       "intermediate_size", "vocab_size", "rms_norm_eps", "rope_theta",
                                       "max_position")},
        "window": int(window),
        "tree_shape": list(tree_shape) if tree_shape is not None else list(DEFAULT_TREE),
        "final_norm": bool(final_norm),
        "attention_bias": bool(attention_bias),
    }
    if mlp_intermediate_size is not None:
        out["mlp_intermediate_size"] = int(mlp_intermediate_size)
    if extra:
        out.update(extra)
    return out


def save_safetensors(path: str | os.PathLike, tensors: dict[str, np.ndarray], dtype: str = "F32",
                     metadata: dict | None = None) -> None:
    """Writes numpy arrays to a safetensors file as F32 or BF16, through the ``safetensors`` library.

    F32 goes through its numpy API (no torch needed at run time). numpy has no bfloat16, so BF16
    (what training writes) rounds to nearest even in torch and saves through its torch API.
    """
    if dtype not in ("F32", "BF16"):
        raise ValueError(f"dtype must be 'F32' or 'BF16', got {dtype!r}")
    import numpy as np

    meta = {str(k): str(v) for k, v in metadata.items()} if metadata else None
    arrays = {name: np.ascontiguousarray(arr, dtype=np.float32) for name, arr in tensors.items()}
    if dtype == "F32":
        from safetensors.numpy import save_file

        save_file(arrays, os.fspath(path), metadata=meta)
        return
    try:
        import torch
        from safetensors.torch import save_file as save_torch_file
    except ImportError as exc:
        raise ImportError("dtype='BF16' needs torch (pip install 'longspec[train]')") from exc
    save_torch_file({name: torch.from_numpy(arr).to(torch.bfloat16) for name, arr in arrays.items()},
                    os.fspath(path), metadata=meta)


WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


def write_draft(path: str | os.PathLike, config: dict, tensors: dict[str, np.ndarray], dtype: str = "F32",
                max_shard_bytes: int | None = None) -> str:
    """Writes a draft checkpoint directory: config.json and model.safetensors, or, when the tensors
    take more than ``max_shard_bytes``, shards of at most that size (a tensor larger than it has a
    shard of its own) named by model.safetensors.index.json. Weight files of the other layout
    left in the directory by an earlier write are removed: the engine prefers the index."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [out / WEIGHTS_FILE, out / INDEX_FILE, *out.glob("model-*-of-*.safetensors")]:
        stale.unlink(missing_ok=True)
    element_bytes = 2 if dtype == "BF16" else 4
    shards = plan_shards(tensors, element_bytes, max_shard_bytes)
    if len(shards) == 1:
        save_safetensors(out / WEIGHTS_FILE, tensors, dtype=dtype, metadata={"format": FORMAT})
    else:
        weight_map = {}
        for i, names in enumerate(shards):
            name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_safetensors(out / name, {k: tensors[k] for k in names}, dtype=dtype, metadata={"format": FORMAT})
            weight_map.update({k: name for k in names})
        total = sum(int(t.size) for t in tensors.values()) * element_bytes
        with open(out / INDEX_FILE, "w") as f:
            json.dump({"metadata": {"total_size": total, "format": FORMAT}, "weight_map": weight_map}, f, indent=1)
    with open(out / "config.json", "w") as f:
        json.dump(config, f, indent=2)
    return str(out)


def plan_shards(tensors: dict, element_bytes: int, max_shard_bytes: int | None) -> list[list[str]]:
    """Tensor names in name order, cut into consecutive groups of at most max_shard_bytes (None or
    a total within it: one group)."""
    if max_shard_bytes is not None and max_shard_bytes < 1:
        raise ValueError(f"max_shard_bytes must be positive, got {max_shard_bytes}")
    groups, size = [[]], 0
    for name in sorted(tensors):
        nbytes = int(tensors[name].size) * element_bytes
        if max_shard_bytes is not None and groups[-1] and size + nbytes > max_shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += nbytes
    return groups


def draft_weight_files(path: str | os.PathLike) -> list[str]:
    """The weight files of the draft directory ``path``: the shards its index names (each a plain
    file name inside the directory, as the engine requires), else model.safetensors."""
    root = Path(path)
    index = root / INDEX_FILE
    if not index.is_file():
        return [str(root / WEIGHTS_FILE)]
    with open(index) as f:
        weight_map = json.load(f).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{index}: missing or empty \"weight_map\"")
    files = sorted(set(weight_map.values()))
    for name in files:
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"{index}: weight_map names {name!r}, not a plain file name inside the directory")
    return [str(root / name) for name in files]


def shard_draft(draft: str | os.PathLike, max_shard_bytes: int) -> list[str]:
    """Rewrites the draft directory's weights as shards of at most ``max_shard_bytes`` (one
    model.safetensors again when they fit), keeping every tensor's stored dtype and values.
    Returns the weight files written."""
    from safetensors import safe_open

    files = draft_weight_files(draft)
    stored, dtypes = {}, set()
    for file in files:
        with safe_open(file, framework="pt") as f:
            for name in f.keys():
                if name in stored:
                    raise ValueError(f"{draft}: tensor {name!r} appears in more than one weight file")
                stored[name] = f.get_tensor(name)
                dtypes.add(str(stored[name].dtype))
    if dtypes - {"torch.bfloat16", "torch.float32"} or len(dtypes) != 1:
        raise ValueError(f"{draft}: expected one dtype, bfloat16 or float32, found {sorted(dtypes)}")
    dtype = "BF16" if dtypes == {"torch.bfloat16"} else "F32"
    # bf16 -> float32 is exact, and save_safetensors rounds it back to the same bf16
    tensors = {name: t.float().numpy() for name, t in stored.items()}
    with open(Path(draft) / "config.json") as f:
        config = json.load(f)
    # Written beside the draft first: a failed write leaves its weights as they were.
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(dir=Path(draft).resolve().parent) as tmp:
        write_draft(tmp, config, tensors, dtype=dtype, max_shard_bytes=max_shard_bytes)
        written = [p for p in Path(tmp).iterdir() if p.name != "config.json"]
        for file in files:
            Path(file).unlink()
        (Path(draft) / INDEX_FILE).unlink(missing_ok=True)
        for p in written:
            shutil.move(str(p), Path(draft) / p.name)
    return draft_weight_files(draft)


HEAD_TOKENS_FILE = "head_tokens.json"  # cpp/src/speculation/draft_model.h: DraftModel::kHeadTokensFile


def restrict_draft_head(draft: str | os.PathLike, out: str | os.PathLike, tokens, note: dict | None = None) -> str:
    """Copies the LongSpec draft ``draft`` to ``out`` with an LM head over ``tokens`` only (their
    rows of the target's head, taken from the target file when the engine loads the draft): each
    draft level then computes len(tokens) logits instead of the whole vocabulary's (FR-Spec's
    frequency-ranked draft head). The draft can propose only those tokens; verification still
    runs over the whole vocabulary, so the output is unchanged. Returns ``out``."""
    import shutil

    ids = sorted({int(t) for t in tokens})
    if not ids or ids[0] < 0:
        raise ValueError("tokens must be a non-empty set of non-negative token ids")
    src, dst = Path(draft), Path(out)
    if not (src / "config.json").is_file():
        raise ValueError(f"{src} is not a LongSpec draft directory (no config.json)")
    if dst.exists():
        raise FileExistsError(f"{dst} exists; choose a new directory")
    shutil.copytree(src, dst)
    with open(dst / HEAD_TOKENS_FILE, "w") as f:
        json.dump({"tokens": ids, **({"note": note} if note else {})}, f)
    return str(dst)


def random_draft(target: str, path: str | os.PathLike, seed: int = 0, *, window: int = DEFAULT_WINDOW,
                 tree_shape=None, final_norm: bool = False, attention_bias: bool | None = None,
                 std: float = 0.02, mlp_intermediate_size: int | None = None) -> str:
    """Writes a randomly initialised LongSpec draft for ``target`` to ``path`` and returns the path.

    Linear weights ~ N(0, std^2), norm weights 1, biases 0 (the usual initialisation; also the
    starting point of training). Works for any target the engine can load.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    cfg = target_config(target)
    dcfg = make_draft_config(cfg, window=window, tree_shape=tree_shape, final_norm=final_norm,
                             attention_bias=attention_bias, mlp_intermediate_size=mlp_intermediate_size)
    import numpy as np

    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in draft_tensor_shapes(cfg, dcfg["attention_bias"], final_norm, mlp_intermediate_size).items():
        if name.endswith("norm.weight"):
            tensors[name] = np.ones(shape, dtype=np.float32)
        elif name.endswith(".bias"):
            tensors[name] = np.zeros(shape, dtype=np.float32)
        else:
            tensors[name] = (rng.standard_normal(shape) * std).astype(np.float32)
    return write_draft(path, dcfg, tensors)


def packaged_draft_for(target_path: str) -> str | None:
    """The packaged draft made for this exact target file (matched by fingerprint), or None."""
    index = PACKAGED_DIR / "index.json"
    if not index.is_file() or not os.path.isfile(target_path):
        return None
    entries = json.loads(index.read_text())
    fp = file_fingerprint(target_path)
    for entry in entries:
        if entry.get("target_fingerprint") == fp:
            path = PACKAGED_DIR / entry["dir"]
            if (path / "config.json").is_file():
                return str(path)
    return None
