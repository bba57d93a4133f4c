#!/usr/bin/env python3
"""Extra rows for the GPU decode table: longspec plain at more contexts (llama3-8b-shape at 4k,
16k and 128k, smollm2 at 1k and 4k), and SmolLM2 at 8k with CUDA graphs / PDL switched off, to show what
each is worth. Prints JSON rows (same schema as bench_gpu.py)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench_gpu import floor_ms  # noqa: E402

rows = []


ablations = []  # not decode-speed rows of the shared schema: the same method with a switch off


def run(path, ctx, name, env=None, setting=None):
    code = f"""
import json, sys
sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r})
from bench_gpu import time_longspec
info, r = time_longspec({path!r}, {ctx}, 32, None)
print(json.dumps(dict(info=info, r=r)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **(env or {})})
    d = json.loads(out.stdout.strip().splitlines()[-1])
    row = {"model": name, "context": ctx, "ms_per_token": round(d["r"]["ms_per_token"], 4),
           "prefill_s": round(d["r"]["prefill_s"], 3)}
    if setting is not None:
        ablations.append({**row, "setting": setting})
    else:
        rows.append({"model": name, "context": ctx, "method": "floor", "ms_per_token": round(floor_ms(d["info"], ctx), 4)})
        rows.append({**row, "method": "plain"})
    print(row, setting, flush=True)


llama = "/tmp/longspec_bench/llama3-8b-shape"
smol = os.environ["SMOL"]
# The timing checkpoint is written for 32k (bench_gpu.py); Llama-3's RoPE has no position limit of
# its own, so 128k only needs the config to allow it.
config_path = os.path.join(llama, "config.json")
with open(config_path) as f:
    config = json.load(f)
if config.get("max_position_embeddings", 0) < 131072 + 1024:
    config["max_position_embeddings"] = 131072 + 1024
    with open(config_path, "w") as f:
        json.dump(config, f, indent=1)
for ctx in (4096, 16384, 131072):
    run(llama, ctx, "llama3-8b-shape")
for ctx in (1024, 4096):
    run(smol, ctx, "smollm2-135m")
run(smol, 8000, "smollm2-135m", {"LONGSPEC_CUDA_GRAPHS": "0"}, "LONGSPEC_CUDA_GRAPHS=0")
run(smol, 8000, "smollm2-135m", {"LONGSPEC_PDL": "0"}, "LONGSPEC_PDL=0")
print(json.dumps({"rows": rows, "ablations": ablations}))
