#!/usr/bin/env python3
"""Where a speculative round's time goes on the CPU: plain ms/token against draft and verify ms
per round, for several tree shapes and prompt lengths, one run, same engine.

    python bench/bench_cpu_spec_rounds.py [--target smollm2] [--draft auto] [--contexts 128,2048]

Writes bench/results/cpu_spec_rounds_<date>.json and .md. Greedy; every speculative run's tokens
are checked against plain decoding of the same prompt.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="smollm2")
    ap.add_argument("--draft", default="auto")
    ap.add_argument("--contexts", default="128,2048")
    ap.add_argument("--trees", default="1;1,1,1;4,4,4;4,16,16,16,16")
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = ap.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_cpu_decode import cpu_model, prompt_ids, write_results
    from longspec import Engine
    from longspec.models import resolve_model_path
    from longspec.tokenizer import Tokenizer

    path = resolve_model_path(args.target)
    contexts = [int(c) for c in args.contexts.split(",")]
    trees = [[int(w) for w in t.split(",")] for t in args.trees.split(";") if t.strip()]
    all_ids = prompt_ids(Tokenizer.from_checkpoint(path), max(contexts))
    eng = Engine(path, draft=args.draft, device="cpu", num_threads=args.threads, tokenizer=False)
    eng.generate(all_ids[:64], max_new_tokens=4, ignore_eos=True, speculative=False)  # warm up
    rows = []
    for n in contexts:
        ids = all_ids[:n]
        plain = eng.generate(ids, max_new_tokens=args.new_tokens, ignore_eos=True, speculative=False)
        rows.append({"context": n, "tree": None, "ms_per_token": 1000.0 / plain.stats["tokens_per_s"]})
        for tree in trees:
            out = eng.generate(ids, max_new_tokens=args.new_tokens, ignore_eos=True, tree=tree)
            s = out.stats
            rows.append({"context": n, "tree": tree, "verified_rows": 1 + sum(tree), "tau": s["mean_accepted"],
                         "ms_per_token": 1000.0 / s["tokens_per_s"],
                         "draft_ms_per_round": 1000.0 * s["draft_s"] / s["rounds"],
                         "verify_ms_per_round": 1000.0 * s["verify_s"] / s["rounds"],
                         "other_ms_per_round": 1000.0 * s["other_s"] / s["rounds"],
                         "tokens_identical": out.tokens == plain.tokens})
    date = dt.date.today().isoformat()
    result = {"date": date, "cpu": cpu_model(), "cores": os.cpu_count(), "threads": args.threads,
              "target": os.path.basename(path), "draft": args.draft, "new_tokens": args.new_tokens, "rows": rows}
    lines = [f"# CPU speculative rounds, {result['target']} + draft {args.draft}",
             f"{date}, {result['cpu']} ({os.cpu_count()} cores, {args.threads} threads), greedy, "
             f"{args.new_tokens} new tokens", "",
             "| context | tree | verified rows | tau | ms/token | draft ms/round | verify ms/round | same tokens |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if r["tree"] is None:
            lines.append(f"| {r['context']} | plain | 1 | 1 | {r['ms_per_token']:.1f} | - | - | - |")
        else:
            lines.append(f"| {r['context']} | {r['tree']} | {r['verified_rows']} | {r['tau']:.2f} | "
                         f"{r['ms_per_token']:.1f} | {r['draft_ms_per_round']:.1f} | {r['verify_ms_per_round']:.1f} | "
                         f"{r['tokens_identical']} |")
    write_results(args.out, f"cpu_spec_rounds_{date}", result, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
