#!/usr/bin/env python3
"""CPU decode benchmark: longspec plain decoding vs Hugging Face transformers (fp32), side by side
in one run, against the memory-bandwidth floor.

    python bench/bench_cpu_decode.py [--target smollm2] [--prompt-tokens 2048] [--new-tokens 64]

Writes bench/results/cpu_decode_<date>.json and .md. The prompt is real text (CPython source)
tokenised by the checkpoint's tokenizer. Both sides use every core of the machine and greedy
decoding; HF runs a hand loop with its KV cache (model(ids) then one token at a time), which is
faster than `generate` and so the stronger baseline.
"""
from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np


def copy_bandwidth_gbs(mb: int = 512, reps: int = 5) -> float:
    """Large-array copy bandwidth counting bytes read + written (GB/s), best of `reps`."""
    a = np.ones(mb * 1024 * 1024 // 8)
    b = np.empty_like(a)
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        np.copyto(b, a)
        dt_ = time.perf_counter() - t
        best = max(best, 2 * a.nbytes / dt_ / 1e9)
    return best


def prompt_ids(tok, n: int) -> list[int]:
    import http.client
    import json as json_mod
    import typing

    text = "".join(inspect.getsource(m) for m in (http.client, json_mod.decoder, typing))
    ids = tok.encode(text)
    assert len(ids) >= n, (len(ids), n)
    return ids[:n]


def cpu_model() -> str:
    out = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | head -1"], capture_output=True, text=True).stdout
    return out.split(":")[-1].strip()


def write_results(out_dir: str, stem: str, result: dict, table: str) -> None:
    """Prints the table and writes out_dir/stem.json (the result) and out_dir/stem.md (the table)."""
    print(table)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, stem + ".json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(out_dir, stem + ".md"), "w") as f:
        f.write(table + "\n")


def bench_longspec(path, ids, new_tokens, threads, draft=None, tree=None):
    from longspec import Engine

    eng = Engine(path, draft=draft, device="cpu", num_threads=threads, tokenizer=False, prefill_chunk=256)
    if draft is not None:
        assert eng.has_draft, f"no draft for {path} (draft={draft!r})"
    eng.generate(ids[:64], max_new_tokens=4, ignore_eos=True, speculative=False)  # warm up
    kw = {"tree": tree} if tree else {}
    out = eng.generate(ids, max_new_tokens=new_tokens, ignore_eos=True, speculative=draft is not None, **kw)
    s = out.stats
    return {"prefill_tok_s": s["prefill_tokens_per_s"], "decode_tok_s": s["tokens_per_s"],
            "decode_ms_per_token": 1000.0 / s["tokens_per_s"], "tokens": out.tokens,
            "parameter_bytes": eng.target_info["parameter_bytes"], "mean_accepted": s.get("mean_accepted"),
            "kv_bytes": s["target_cache_bytes"]}


def bench_hf(path, ids, new_tokens, threads):
    import torch
    from longspec.training.target import load_target

    torch.set_num_threads(threads)
    model = load_target(path, device="cpu", dtype=torch.float32)
    x = torch.tensor([ids])
    with torch.no_grad():
        model(x[:, :64])  # warm up
        t = time.perf_counter()
        res = model(x, use_cache=True)
        prefill_s = time.perf_counter() - t
        past = res.past_key_values
        tok = int(res.logits[0, -1].argmax())
        out = [tok]
        t = time.perf_counter()
        for _ in range(new_tokens - 1):
            res = model(torch.tensor([[tok]]), past_key_values=past, use_cache=True)
            past = res.past_key_values
            tok = int(res.logits[0, -1].argmax())
            out.append(tok)
        decode_s = time.perf_counter() - t
    return {"prefill_tok_s": len(ids) / prefill_s, "decode_tok_s": (new_tokens - 1) / decode_s,
            "decode_ms_per_token": 1000.0 * decode_s / (new_tokens - 1), "tokens": out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="smollm2")
    ap.add_argument("--prompt-tokens", type=int, default=2048)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--draft", default=None, help="also time speculative decoding with this draft ('auto': packaged)")
    ap.add_argument("--trees", default="1,1,1;4,16,16,16,16", help="tree shapes for speculative runs, ';'-separated")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = ap.parse_args()

    from longspec.models import resolve_model_path
    from longspec.tokenizer import Tokenizer

    path = resolve_model_path(args.target)
    ids = prompt_ids(Tokenizer.from_checkpoint(path), args.prompt_tokens)
    bw = copy_bandwidth_gbs()
    ours = bench_longspec(path, ids, args.new_tokens, args.threads)
    hf = bench_hf(path, ids, args.new_tokens, args.threads)
    specs = []
    if args.draft:
        for t in [x for x in args.trees.split(";") if x.strip()]:
            tree = [int(w) for w in t.split(",")]
            specs.append((tree, bench_longspec(path, ids, args.new_tokens, args.threads, draft=args.draft, tree=tree)))
    # Floor for one decode step: every weight byte that a step streams (all but the embedding
    # table, of which one row is read) and the KV cache, read once at copy bandwidth.
    from longspec import _C

    cfg = _C.model_config(path)
    streamed = ours["parameter_bytes"] - cfg["vocab_size"] * cfg["hidden_size"] * 4
    floor_ms = (streamed + ours["kv_bytes"]) / (bw * 1e9) * 1000.0
    same = ours["tokens"] == hf["tokens"]
    result = {
        "date": dt.date.today().isoformat(), "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                                                         "python": platform.python_version()},
        "target": os.path.basename(path), "prompt_tokens": len(ids), "new_tokens": args.new_tokens,
        "threads": args.threads, "copy_bandwidth_gbs": bw, "floor_ms_per_token": floor_ms,
        "longspec_plain": {k: v for k, v in ours.items() if k != "tokens"},
        "hf_transformers_fp32": {k: v for k, v in hf.items() if k != "tokens"},
        "greedy_tokens_identical": same,
    }
    for tree, spec in specs:
        key = "longspec_speculative_" + "_".join(map(str, tree))
        result[key] = {k: v for k, v in spec.items() if k != "tokens"}
        result[key + "_tokens_identical"] = spec["tokens"] == ours["tokens"]
    rows = [("longspec plain (fp32)", ours), ("HF transformers fp32", hf)]
    rows += [(f"longspec speculative, tree {tree}, tau {spec['mean_accepted']:.2f}", spec) for tree, spec in specs]
    lines = [f"# CPU decode, {result['target']}, {len(ids)}-token prompt, {args.new_tokens} new tokens",
             f"{result['date']}, {result['machine']['cpu']} ({os.cpu_count()} cores), copy bandwidth {bw:.1f} GB/s",
             "", "| engine | prefill tok/s | decode tok/s | ms/token | floor ms/token |", "| --- | --- | --- | --- | --- |"]
    for name, r in rows:
        lines.append(f"| {name} | {r['prefill_tok_s']:.0f} | {r['decode_tok_s']:.1f} | {r['decode_ms_per_token']:.1f} | {floor_ms:.1f} |")
    lines.append("")
    lines.append(f"greedy tokens identical to HF: {same}")
    for tree, spec in specs:
        lines.append(f"speculative (tree {tree}) tokens identical to plain: {spec['tokens'] == ours['tokens']}")
    lines.append("floor = (weights streamed per step + KV cache) / copy bandwidth (bytes read + written)")
    write_results(args.out, f"cpu_decode_{result['date']}", result, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
