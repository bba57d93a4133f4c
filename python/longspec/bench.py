"""``longspec bench``: plain vs speculative decoding vs HF transformers on this machine.

For each context length the same prompt (real text when the model has a tokenizer: Python's own
standard library source; fixed pseudo-random ids otherwise) is decoded greedily for a fixed number
of new tokens, never stopping at EOS, by

- ``plain``: longspec without a draft pass;
- ``speculative``: longspec with the draft (its own tree, or ``--tree``); its tokens are checked
  against plain's, which greedy decoding must reproduce exactly;
- ``hf_generate``: ``transformers`` ``generate`` on the same checkpoint (fp32 on the CPU, bf16 on
  a GPU), when torch and transformers are installed; otherwise the result says it was skipped.

Rows follow the shared benchmark schema (``model``, ``context``, ``method``, ``ms_per_token``,
``tau``): decode milliseconds per emitted token, prefill excluded.
"""
from __future__ import annotations

import datetime as dt
import glob
import os
import random
import sys
import sysconfig
import time

from .models import ALIASES

# The shared benchmark name of the built-in model (other targets are named after their path).
_SHARED_NAMES = {"smollm2": "smollm2-135m"}


def model_name(target: str, target_path: str) -> str:
    alias = ALIASES.get(target.lower())
    if alias in _SHARED_NAMES:
        return _SHARED_NAMES[alias]
    return os.path.basename(os.path.normpath(target_path)).removesuffix(".gguf")


def card(device: str) -> str:
    """The device in words, e.g. "AMD EPYC 7B13 (2 cores)" or "NVIDIA H200"."""
    if device == "cuda":
        try:
            import torch

            return torch.cuda.get_device_name(0)
        except Exception:  # noqa: BLE001 - no torch, or torch without CUDA: say what we know
            return "CUDA GPU"
    cpu = "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} cores)"


def prompt_ids(engine, length: int) -> list[int]:
    """``length`` prompt tokens: standard-library source text through the model's tokenizer (real
    text, so the draft is accepted as it would be on a user's prompt), else fixed random ids."""
    if engine.tokenizer is None:
        rng = random.Random(0)
        return [rng.randrange(3, engine.target_info["vocab_size"]) for _ in range(length)]
    ids: list[int] = []
    for path in sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py"))):
        with open(path, encoding="utf-8", errors="replace") as f:
            ids += engine.encode(f.read())
        if len(ids) >= length:
            break
    if len(ids) < length:
        raise ValueError(f"could not find {length} tokens of text for the prompt")
    return ids[:length]


def _longspec_row(engine, ids, new_tokens: int, speculative: bool, tree) -> dict:
    out = engine.generate(ids, max_new_tokens=new_tokens, ignore_eos=True, speculative=speculative,
                          tree=tree if speculative else None)
    s = out.stats
    return {"method": "speculative" if speculative else "plain", "ms_per_token": 1000.0 / s["tokens_per_s"],
            "tau": s["mean_accepted"] if speculative else None, "tokens_per_s": s["tokens_per_s"],
            "prefill_s": s["prefill_s"], "new_tokens": len(out.tokens), "tokens": list(out.tokens)}


class HFModel:
    """The target as a transformers model, or the reason it cannot be one here."""

    def __init__(self, target_path: str, device: str):
        self.model, self.reason = None, None
        try:
            import torch
            import transformers
        except ImportError as exc:
            self.reason = f"HF transformers skipped: {exc.name} is not installed (pip install torch transformers)"
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        self.torch = torch
        self.device = device if device == "cuda" else "cpu"
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        if os.path.isdir(target_path):
            where, kw = target_path, {}
        else:
            where, kw = os.path.dirname(os.path.abspath(target_path)), {"gguf_file": os.path.basename(target_path)}
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **kw)
        except Exception as exc:  # noqa: BLE001 - an architecture or file transformers cannot read
            self.reason = f"HF transformers skipped: cannot load the target: {type(exc).__name__}: {exc}"
            return
        self.model = model.to(self.device).eval()

    def _generate_s(self, x, n: int) -> float:
        torch = self.torch
        if self.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            self.model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n, min_new_tokens=n,
                                do_sample=False, pad_token_id=0)
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def row(self, ids: list[int], new_tokens: int) -> dict:
        """Decode ms per token: (time for n tokens - time for 1 token) / (n - 1); the 1-token run is
        the prefill."""
        x = self.torch.tensor([ids], device=self.device)
        self._generate_s(x[:, :16], 2)  # warm-up
        prefill = self._generate_s(x, 1)
        total = self._generate_s(x, new_tokens)
        ms = 1000.0 * max(total - prefill, 1e-9) / max(new_tokens - 1, 1)
        return {"method": "hf_generate", "ms_per_token": ms, "tau": None, "tokens_per_s": 1000.0 / ms,
                "prefill_s": prefill, "new_tokens": new_tokens}


def run(engine, *, target: str, contexts: list[int], new_tokens: int, tree=None, hf: bool = True,
        log=print) -> dict:
    """Measures every method at every context; returns the result document (schema rows)."""
    name = model_name(target, engine.target_path)
    if tree:
        ran_tree = tree if isinstance(tree, str) else list(tree)  # "auto" stays a word
    else:
        ran_tree = engine.tree if engine.has_draft else None
    result = {"card": card(engine.device), "date": dt.date.today().isoformat(), "device": engine.device,
              "target": engine.target_path, "draft": engine.draft_path, "new_tokens": new_tokens,
              "tree": ran_tree, "rows": [], "notes": []}
    if not engine.has_draft:
        result["notes"].append("speculative skipped: the engine has no draft (--draft)")
    hf_model = None
    if hf:
        log("loading the target into HF transformers ...")
        hf_model = HFModel(engine.target_path, engine.device)
        if hf_model.reason:
            result["notes"].append(hf_model.reason)
            hf_model = None
    else:
        result["notes"].append("HF transformers skipped: --no-hf")
    engine.generate(prompt_ids(engine, 16), max_new_tokens=4, ignore_eos=True, speculative=False)  # warm-up
    for context in contexts:
        if context + new_tokens > engine.context_limit:
            result["notes"].append(f"context {context} skipped: {context} + {new_tokens} new tokens exceed the "
                                   f"context limit {engine.context_limit}")
            continue
        ids = prompt_ids(engine, context)
        rows = [_longspec_row(engine, ids, new_tokens, False, None)]
        if engine.has_draft:
            rows.append(_longspec_row(engine, ids, new_tokens, True, tree))
            rows[-1]["same_tokens_as_plain"] = rows[-1]["tokens"] == rows[0]["tokens"]
        if hf_model is not None:
            rows.append(hf_model.row(ids, new_tokens))
        for row in rows:
            row.pop("tokens", None)
            row = {"model": name, "context": int(context), **row}
            for key in ("ms_per_token", "tokens_per_s", "prefill_s", "tau"):
                if row.get(key) is not None:
                    row[key] = round(float(row[key]), 4)
            result["rows"].append(row)
            log(f"context {context}: {row['method']} {row['ms_per_token']:.2f} ms/token")
    return result


def table(result: dict) -> str:
    """The result as a markdown table, speed-ups against plain at the same context."""
    plain = {r["context"]: r["ms_per_token"] for r in result["rows"] if r["method"] == "plain"}
    lines = [f"{result['card']}, {result['date']}, {result['new_tokens']} new tokens, greedy",
             "", "| context | method | ms/token | tok/s | tau | vs plain |", "| --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        tau = f"{r['tau']:.2f}" if r.get("tau") is not None else "-"
        ratio = plain[r["context"]] / r["ms_per_token"] if r["context"] in plain else float("nan")
        speedup = f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"  # HF may be 100x slower
        lines.append(f"| {r['context']} | {r['method']} | {r['ms_per_token']:.2f} | {1000 / r['ms_per_token']:.1f} | "
                     f"{tau} | {speedup} |")
    return "\n".join(lines + [f"note: {n}" for n in result["notes"]])


def require_matplotlib():
    """matplotlib's pyplot on a file-only backend, or ImportError saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("--plot needs matplotlib, which is not installed: pip install matplotlib "
                          "(or pip install \"longspec[plot]\")") from exc
    return plt


def plot(result: dict, path: str) -> None:
    """Tokens/s against context, one line per method."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(r["method"] for r in result["rows"]):
        rows = sorted((r for r in result["rows"] if r["method"] == method), key=lambda r: r["context"])
        ax.plot([r["context"] for r in rows], [1000 / r["ms_per_token"] for r in rows], marker="o", label=method)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel("decode tokens/s")
    ax.set_title(f"{result['rows'][0]['model'] if result['rows'] else ''} on {result['card']}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
