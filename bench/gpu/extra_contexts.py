#!/usr/bin/env python3
"""Extra rows for the GPU decode table: longspec plain at more contexts (llama3-8b-shape at 4k and
16k, smollm2 at 1k and 4k), and SmolLM2 at 8k with CUDA graphs / PDL switched off, to show what
each is worth. Prints JSON rows (same schema as bench_gpu.py)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench_gpu import READ_BW, floor_ms, prompt_ids  # noqa: E402

rows = []


def run(path, ctx, name, env=None, label="plain"):
    code = f"""
import json, sys
sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r})
from bench_gpu import time_longspec, floor_ms, prompt_ids
info, r = time_longspec({path!r}, {ctx}, 32, None)
print(json.dumps(dict(info=info, r=r)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **(env or {})})
    d = json.loads(out.stdout.strip().splitlines()[-1])
    rows.append({"model": name, "context": ctx, "method": "floor", "ms_per_token": round(floor_ms(d["info"], ctx), 4)})
    rows.append({"model": name, "context": ctx, "method": label, "ms_per_token": round(d["r"]["ms_per_token"], 4),
                 "prefill_s": round(d["r"]["prefill_s"], 3)})
    print(rows[-2], rows[-1], flush=True)


llama = "/tmp/longspec_bench/llama3-8b-shape"
smol = os.environ["SMOL"]
for ctx in (4096, 16384):
    run(llama, ctx, "llama3-8b-shape")
for ctx in (1024, 4096):
    run(smol, ctx, "smollm2-135m")
run(smol, 8000, "smollm2-135m", {"LONGSPEC_CUDA_GRAPHS": "0"}, "plain_no_graphs")
run(smol, 8000, "smollm2-135m", {"LONGSPEC_PDL": "0"}, "plain_no_pdl")
print(json.dumps(rows))
