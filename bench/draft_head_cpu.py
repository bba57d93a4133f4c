#!/usr/bin/env python3
"""tau and time of a draft with and without a subset LM head (`longspec draft-head`) against plain
decoding, side by side in one run, on the first tokens of held-out documents (greedy, the
default tree). Used for bench/results/draft_head_subset_cpu_2026-12-01.md:

    python3 bench/draft_head_cpu.py --model smollm2-135m --card "AMD EPYC (2 cores)" --target SmolLM2-135M-Instruct.Q4_1.gguf --data corpus_books \
        --include sect.apt-get,ddl-rowsecurity,topics/db/queries,ch10-02-traits \
        --draft full=models/smollm2-135m-instruct-longspec --draft top16k=/tmp/smol_h16k --draft top8k=/tmp/smol_h8k
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os


def main() -> int:
    from longspec import Engine
    from longspec.training.cli import heldout_documents

    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--data", required=True, help="a prepared corpus with heldout_long.npz")
    ap.add_argument("--include", default="", help="name fragments of the documents to use")
    ap.add_argument("--draft", action="append", required=True, metavar="LABEL=DIR")
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--model", required=True, help="the row's model name in the shared schema, e.g. smollm2-135m")
    ap.add_argument("--card", required=True, help='the device, e.g. "AMD EPYC (2 cores)"')
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    docs = heldout_documents(a.data, [], [x for x in a.include.split(",") if x] or None)
    prompts = [d[:a.context].tolist() for _, d in docs if len(d) >= a.context]
    rows = []
    for spec in a.draft:
        label, path = spec.split("=", 1)
        eng = Engine(a.target, draft=path, device=a.device, num_threads=a.threads)
        rounds = made = 0
        decode_s = draft_s = 0.0
        for ids in prompts:
            s = eng.generate(ids, max_new_tokens=a.new_tokens, ignore_eos=True, speculative=True).stats
            rounds += s["rounds"]
            made += sum(k * n for k, n in enumerate(s["accepted_histogram"]))
            decode_s += s["decode_s"]
            draft_s += s["draft_s"]
        head = os.path.join(path, "head_tokens.json")
        rows.append({"model": a.model, "context": a.context, "method": "speculative", "draft": label,
                     "draft_head": len(json.load(open(head))["tokens"]) if os.path.isfile(head) else None,
                     "tau": round(made / rounds, 3), "rounds": rounds,
                     "draft_ms_per_round": round(1e3 * draft_s / rounds, 2),
                     "ms_per_token": round(1e3 * decode_s / made, 2)})
        print(rows[-1], flush=True)
    plain = Engine(a.target, draft=None, device=a.device, num_threads=a.threads)
    made, decode_s = 0, 0.0
    for ids in prompts:
        out = plain.generate(ids, max_new_tokens=a.new_tokens, ignore_eos=True)
        made += len(out.tokens) - 1  # the first token comes from the prefill
        decode_s += out.stats["decode_s"]
    rows.append({"model": a.model, "context": a.context, "method": "plain", "ms_per_token": round(1e3 * decode_s / made, 2)})
    print(rows[-1])
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"card": a.card, "date": dt.date.today().isoformat(), "device": a.device, "target": a.target,
                       "documents": len(prompts), "new_tokens": a.new_tokens, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
