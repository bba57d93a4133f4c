#!/usr/bin/env python3
"""GPU decode benchmark: longspec plain decoding against Hugging Face transformers and the
memory-bandwidth floor, side by side in one run on one card, batch 1, bf16, greedy.

    python bench/bench_gpu.py --out-dir bench/results [--models a,b,...] [--hf generate,compile]
        [--smollm2 PATH.gguf] [--qwen05 PATH.gguf] [--work /tmp/longspec_bench] [--new-tokens 32]

Models: smollm2-135m (real GGUF, context 8192), qwen2.5-coder-0.5b (real GGUF, 32768),
qwen2.5-1.5b-shape and llama3-8b-shape (random bf16 weights in that shape, 32768; cost per step
does not depend on weight values). "context" is the KV length at which the decode steps run:
the prompt fills it, then --new-tokens tokens are generated.

Rows (schema of ../shared/tools/bench_schema.py): method floor | hf_generate | hf_compile | plain,
ms_per_token = time per decode step after the first token; prefill_s beside it where measured.
floor = (bf16 weight bytes read per step + K/V bytes at that context) / 4.42 TB/s (H200 read
bandwidth measured 2026-11-29). Writes gpu_decode_<date>.json and .md to --out-dir.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import sys
import time

READ_BW = 4.42e12
MODELS = {
    "smollm2-135m": dict(source="smollm2", context=8192),
    "qwen2.5-coder-0.5b": dict(source="qwen05", context=32768),
    "qwen2.5-1.5b-shape": dict(source="shape", context=32768),
    "llama3-8b-shape": dict(source="shape", context=32768),
}


def floor_ms(info: dict, context: int) -> float:
    """Bytes a decode step must read: every Linear weight once (bf16) and the K/V of `context`."""
    h, i, l, v = info["hidden_size"], info["intermediate_size"], info["num_layers"], info["vocab_size"]
    q, kv = info["num_heads"] * info["head_dim"], info["num_kv_heads"] * info["head_dim"]
    weights = l * ((q + 2 * kv) * h + h * q + 3 * i * h) + v * h
    kv_bytes = 2 * l * kv * 2 * context
    return (2 * weights + kv_bytes) / READ_BW * 1e3


def prompt_ids(n: int, vocab: int, tokenizer=None) -> list[int]:
    """n tokens: real text (CPython sources) through the tokenizer when there is one, else random."""
    if tokenizer is not None:
        import sysconfig

        lib = sysconfig.get_paths()["stdlib"]
        text, ids = "", []
        for name in sorted(os.listdir(lib)):
            if name.endswith(".py"):
                text += open(os.path.join(lib, name), encoding="utf-8", errors="replace").read()
                if len(text) > 6 * n:
                    ids = tokenizer.encode(text)
                    if len(ids) >= n:
                        return ids[:n]
        raise RuntimeError("not enough text for the prompt")
    import random

    rng = random.Random(0)
    return [rng.randrange(10, vocab - 1) for _ in range(n)]


def time_longspec(path: str, context: int, new_tokens: int, tokenizer_ids) -> tuple[dict, dict]:
    from longspec import Engine

    eng = Engine(path, draft=None, device="cuda", tokenizer=False, max_context=context + new_tokens + 64)
    info = eng.target_info
    ids = tokenizer_ids if tokenizer_ids is not None else prompt_ids(context, info["vocab_size"])
    runs = []
    for _ in range(2):  # the first run captures the step graphs of its context buckets
        out = eng.generate(ids, max_new_tokens=new_tokens, ignore_eos=True, speculative=False)
        runs.append(out.stats)
    st = runs[-1]
    del eng
    gc.collect()
    return info, {"ms_per_token": 1e3 * st["decode_s"] / (st["new_tokens"] - 1), "prefill_s": st["prefill_s"],
                  "warm_up_ms_per_token": 1e3 * runs[0]["decode_s"] / (runs[0]["new_tokens"] - 1)}


def hf_model(path: str):
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    if path.endswith(".gguf"):
        m = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                              dtype=torch.bfloat16)
    else:
        m = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    return m.to("cuda").eval()


def time_hf(path: str, ids: list[int], new_tokens: int, compiled: bool) -> dict:
    """HF generate: prefill time from a 1-token generation; decode = (N-token time - that) / (N-1)."""
    import torch

    model = hf_model(path)
    x = torch.tensor([ids], device="cuda")
    kw = dict(do_sample=False, pad_token_id=0)
    if compiled:
        model.generation_config.cache_implementation = "static"
        model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
    with torch.no_grad():
        t_compile = time.perf_counter()
        for _ in range(2 if compiled else 1):  # warm-up (compiles the static-cache graphs)
            model.generate(x, max_new_tokens=4, min_new_tokens=4, **kw)
        t_compile = time.perf_counter() - t_compile
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.generate(x, max_new_tokens=1, min_new_tokens=1, **kw)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        model.generate(x, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
        torch.cuda.synchronize()
        t2 = time.perf_counter()
    del model
    gc.collect()
    torch.cuda.empty_cache()
    return {"ms_per_token": 1e3 * ((t2 - t1) - (t1 - t0)) / (new_tokens - 1), "prefill_s": t1 - t0,
            "warm_up_s": t_compile}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default="bench/results")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--hf", default="generate", help="comma list of generate,compile (empty: none)")
    ap.add_argument("--smollm2", default=None)
    ap.add_argument("--qwen05", default=None)
    ap.add_argument("--work", default="/tmp/longspec_bench")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--date", default=dt.date.today().isoformat())
    args = ap.parse_args()
    import torch

    card = torch.cuda.get_device_name(0)
    hf_methods = [m for m in args.hf.split(",") if m]
    rows, notes = [], []
    stem = os.path.join(args.out_dir, f"gpu_decode_{args.date}")
    os.makedirs(args.out_dir, exist_ok=True)

    def save():
        """Writes the JSON and the table so far (a run cut short keeps what it measured)."""
        result = {"card": card, "date": args.date, "read_bandwidth_tbs": READ_BW / 1e12,
                  "new_tokens": args.new_tokens, "rows": rows, "notes": notes}
        with open(stem + ".json", "w") as f:
            json.dump(result, f, indent=1)
        table = render(card, args.date, rows, notes)
        with open(stem + ".md", "w") as f:
            f.write(table + "\n")
        return table

    prepared = []  # (name, context, path, prompt ids)
    for name in args.models.split(","):
        spec = MODELS[name]
        ctx, n = spec["context"], args.new_tokens
        ids = None
        if spec["source"] == "shape":
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            from make_random_checkpoint import write

            t = time.time()
            path = write(name, os.path.join(args.work, name), max_position=ctx + 4096)
            print(f"[{name}] random checkpoint ready in {time.time() - t:.0f} s", flush=True)
        else:
            path = getattr(args, spec["source"])
            if spec["source"] == "smollm2" and path is None:
                from longspec.models import smollm2_path

                path = smollm2_path(download=False)
            if path is None or not os.path.exists(path):
                notes.append(f"{name}: no model file, skipped")
                continue
            from longspec.tokenizer import Tokenizer

            ids = prompt_ids(ctx - n - 1, 0, Tokenizer.from_checkpoint(path))
        info, ours = time_longspec(path, ctx, n, ids)
        if ids is None:
            ids = prompt_ids(ctx, info["vocab_size"])
        prepared.append((name, ctx, path, ids))
        rows.append({"model": name, "context": ctx, "method": "floor", "ms_per_token": round(floor_ms(info, ctx), 4)})
        rows.append({"model": name, "context": ctx, "method": "plain", "ms_per_token": round(ours["ms_per_token"], 4),
                     "prefill_s": round(ours["prefill_s"], 3), "prompt_tokens": len(ids)})
        print(f"[{name}] plain {ours['ms_per_token']:.3f} ms/token, prefill {ours['prefill_s']:.2f} s", flush=True)
        save()
    # Hugging Face after every longspec row: a slow compile cannot cost the rows above.
    for method in hf_methods:
        for name, ctx, path, ids in prepared:
            try:
                r = time_hf(path, ids, args.new_tokens, compiled=(method == "compile"))
                rows.append({"model": name, "context": ctx, "method": "hf_" + method,
                             "ms_per_token": round(r["ms_per_token"], 4), "prefill_s": round(r["prefill_s"], 3),
                             "warm_up_s": round(r["warm_up_s"], 1)})
                print(f"[{name}] hf_{method} {r['ms_per_token']:.3f} ms/token, prefill {r['prefill_s']:.2f} s",
                      flush=True)
            except Exception as e:  # recorded, not hidden: the row is missing and the note says why
                notes.append(f"{name}: hf_{method} failed: {type(e).__name__}: {str(e)[:300]}")
                print(notes[-1], flush=True)
            save()
    print(save())
    return 0


def render(card, date, rows, notes) -> str:
    by = {}
    for r in rows:
        by.setdefault((r["model"], r["context"]), {})[r["method"]] = r
    lines = [f"GPU decode, {card}, {date}: ms per decode step (batch 1, bf16, greedy), prefill seconds in ()",
             "", "| model | context | floor | HF generate | HF static + compile | longspec plain | plain / floor |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for (model, ctx), m in by.items():
        def cell(k):
            r = m.get(k)
            if r is None:
                return "-"
            return f"{r['ms_per_token']:.3f}" + (f" ({r['prefill_s']:.2f} s)" if "prefill_s" in r else "")
        ratio = m["plain"]["ms_per_token"] / m["floor"]["ms_per_token"] if "plain" in m else float("nan")
        lines.append(f"| {model} | {ctx} | {cell('floor')} | {cell('hf_generate')} | {cell('hf_compile')} | "
                     f"{cell('plain')} | {ratio:.2f} |")
    lines += [""] + [f"note: {x}" for x in notes]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
