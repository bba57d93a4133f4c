#!/usr/bin/env python3
"""Training throughput on 1 vs N GPUs (data-parallel), same per-GPU batch, one call.

A step's cost depends on the shapes, not on the weights or the token values, so this uses a
random-weight checkpoint of the target's shape (bench/make_random_checkpoint.py) and random token
ids: nothing has to travel to the GPU machine. Each run trains `--steps` stage-1 steps with
`longspec train-draft` (under torch.distributed.run for N > 1), and tokens/s is read from the
training log between the first logged step after the warm-up and the last one.

    python3 bench/train/ddp_throughput.py --shape smollm2-135m-shape --gpus 1,2 --steps 120 \
        --out bench/results/train_ddp_throughput_DATE.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from gpu_train import train_launcher  # noqa: E402  (a sibling script, not a package)


def synthetic_data(path: str, vocab: int, seq_len: int, rows: int, seed: int = 0) -> None:
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(seed)
    packed = rng.integers(0, vocab, size=(rows, seq_len), dtype=np.int64).astype(np.uint32)
    np.savez(os.path.join(path, "train_packed.npz"), packed=packed)


def run(target: str, data: str, out: str, gpus: int, steps: int, batch: int, seq_len: int, extra: list[str]) -> dict:
    cmd = train_launcher(gpus) + ["train-draft", "--target", target, "--data", data, "--out", out, "--stage1-steps", str(steps),
                      "--stage2-steps", "0", "--batch-size", str(batch), "--seq-len", str(seq_len),
                      "--save-every", "0", "--no-resume"] + extra
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - t0
    log = [r for r in map(json.loads, open(os.path.join(out, "train_log.jsonl"))) if "elapsed_s" in r]
    first, last = log[1], log[-1]  # log[0] includes start-up and compilation of the first steps
    step_s = (last["elapsed_s"] - first["elapsed_s"]) / (last["step"] - first["step"])
    return {"gpus": gpus, "steps": steps, "per_gpu_batch": batch, "seq_len": seq_len,
            "tokens_per_step": last["tokens"], "ms_per_step": round(step_s * 1000, 2),
            "tokens_per_s": round(last["tokens"] / step_s), "wall_s": round(wall, 1), "command": " ".join(cmd)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="smollm2-135m-shape")
    ap.add_argument("--gpus", default="1,2")
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--work", default="/tmp/ddp_throughput")
    ap.add_argument("--out", required=True, help="results JSON (a .md table is written beside it)")
    ap.add_argument("rest", nargs=argparse.REMAINDER, help="-- extra train-draft arguments")
    a = ap.parse_args()
    import torch

    target = os.path.join(a.work, a.shape)
    if not os.path.isdir(target):
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "make_random_checkpoint.py"), a.shape, target],
                       check=True)
    vocab = json.load(open(os.path.join(target, "config.json")))["vocab_size"]
    data = os.path.join(a.work, "data")
    synthetic_data(data, vocab, a.seq_len, rows=4096)
    extra = [x for x in a.rest if x != "--"]
    rows = []
    for g in [int(x) for x in a.gpus.split(",")]:
        r = run(target, data, os.path.join(a.work, f"run_{g}"), g, a.steps, a.batch_size, a.seq_len, extra)
        print(json.dumps(r), flush=True)
        rows.append(r)
    base = rows[0]["tokens_per_s"]
    for r in rows:
        r["speedup_vs_first"] = round(r["tokens_per_s"] / base, 3)
    card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    result = {"card": card, "gpus_on_host": torch.cuda.device_count(), "date": datetime.date.today().isoformat(),
              "shape": a.shape, "data": "random token ids (throughput does not depend on them)",
              "extra_args": extra, "rows": rows}
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    md = [f"# Draft training throughput, {a.shape} target, {card}, {result['date']}", "",
          f"Stage 1, per-GPU batch {a.batch_size} x {a.seq_len} tokens, {a.steps} steps per run, "
          f"extra args: {' '.join(extra) or 'none'}; random weights and tokens.", "",
          "| GPUs | ms/step | tokens/step | tokens/s | vs 1 GPU |", "|---|---|---|---|---|"]
    md += [f"| {r['gpus']} | {r['ms_per_step']} | {r['tokens_per_step']} | {r['tokens_per_s']} | {r['speedup_vs_first']}x |"
           for r in rows]
    with open(os.path.splitext(a.out)[0] + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
