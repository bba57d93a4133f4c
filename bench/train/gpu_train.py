#!/usr/bin/env python3
"""One GPU training call: (join the model parts,) optionally probe throughput to size the run to a
time budget, train, and copy the draft + log to $OUT.

    python3 bench/train/gpu_train.py --model NAME --data /tmp/data/smol --run /tmp/runs/aoi \
        --budget-s 400 [--steps N] [--stage 1|2] [--gpus 2] [--resume-state FILE --until-step S] \
        [--return-state] -- [train-draft args]

--gpus N trains data-parallel over N GPUs (torchrun, NCCL); --resume-state copies a trainer state
(trainer_state.pt, rejoined from the parts a previous call returned) into the run directory and
resumes it (then --steps is the whole run's length and --until-step where this call stops);
--return-state sends the trainer state back in 15 MiB pieces beside the draft, for the next call.

The exact commands of every call, their seeds and the data recipe are in bench/train/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time


def join_model(name: str) -> str:
    dest = f"/tmp/models/{name}"
    if not os.path.isfile(dest):
        subprocess.run([sys.executable, "/tmp/models/parts.py", "join", "/tmp/models/parts", name, dest], check=True)
    return dest


def train_launcher(gpus: int) -> list[str]:
    """The command prefix of `longspec train-draft` on `gpus` GPUs (torchrun, one process per GPU,
    when more than one; train-draft itself turns NVLink multicast off for NCCL)."""
    if gpus <= 1:
        return [sys.executable, "-m", "longspec"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus), "-m",
            "longspec"]


def send_in_pieces(path: str, dest: str, piece: int = 15 * 1024 * 1024) -> None:
    """Copies path into dest whole when it fits one piece, else as NAME.part00, NAME.part01, ...
    (cat NAME.part* > NAME rejoins them)."""
    name = os.path.basename(path)
    with open(path, "rb") as src:
        blob = src.read()
    if len(blob) <= piece:
        with open(os.path.join(dest, name), "wb") as f:
            f.write(blob)
        return
    for i in range(0, len(blob), piece):
        with open(os.path.join(dest, f"{name}.part{i // piece:02d}"), "wb") as f:
            f.write(blob[i:i + piece])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--budget-s", type=float, default=400)
    ap.add_argument("--steps", type=int, default=0, help="0: probe throughput and fit the budget")
    ap.add_argument("--stage", type=int, default=1)
    ap.add_argument("--out-name", default="draft")
    ap.add_argument("--gpus", type=int, default=1, help="data-parallel processes (one per GPU)")
    ap.add_argument("--resume-state", default=None, help="trainer_state.pt of the run to continue")
    ap.add_argument("--until-step", type=int, default=None, help="stop (and checkpoint) at this step")
    ap.add_argument("--return-state", action="store_true", help="also return trainer_state.pt in pieces")
    ap.add_argument("rest", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    target = join_model(a.model)
    extra = [x for x in a.rest if x != "--"]
    launcher = train_launcher(a.gpus)
    flag = "--stage1-steps" if a.stage == 1 else "--stage2-steps"
    other = "--stage2-steps" if a.stage == 1 else "--stage1-steps"
    steps = a.steps
    if steps == 0:
        # Probe: 12 steps after 3 warm-up steps of the same configuration, in a scratch directory.
        probe_dir = a.run + "_probe"
        shutil.rmtree(probe_dir, ignore_errors=True)
        cmd = launcher + ["train-draft", "--target", target, "--data", a.data, "--out",
                          probe_dir, flag, "15", other, "0", "--save-every", "0", "--no-resume"] + extra
        t0 = time.time()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        log = [r for r in map(json.loads, open(os.path.join(probe_dir, "train_log.jsonl"))) if "elapsed_s" in r]
        per_step = (log[-1]["elapsed_s"] - log[0]["elapsed_s"]) / (log[-1]["step"] - log[0]["step"])
        steps = max(10, int(a.budget_s / per_step))
        print(f"probe: {per_step * 1000:.0f} ms/step (whole probe {time.time() - t0:.0f} s) -> {steps} steps", flush=True)
    resume = []
    if a.resume_state:
        os.makedirs(a.run, exist_ok=True)
        shutil.copy(a.resume_state, os.path.join(a.run, "trainer_state.pt"))
    else:
        resume = ["--no-resume"]
    if a.until_step is not None:
        resume += ["--until-step", str(a.until_step)]
    cmd = launcher + ["train-draft", "--target", target, "--data", a.data, "--out", a.run,
                      flag, str(steps), other, "0", "--save-every", "1000",
                      "--time-limit", str(a.budget_s * 1.3)] + resume + extra
    print(" ".join(cmd), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    print(f"trained {steps} steps in {time.time() - t0:.0f} s", flush=True)
    out = os.environ.get("OUT")
    if out:
        dest = os.path.join(out, a.out_name)
        os.makedirs(dest, exist_ok=True)
        shutil.copy(os.path.join(a.run, "draft", "config.json"), os.path.join(dest, "config.json"))
        # Files come back from the device in pieces of at most 16 MiB: split larger ones.
        send_in_pieces(os.path.join(a.run, "draft", "model.safetensors"), dest)
        if a.return_state:
            send_in_pieces(os.path.join(a.run, "trainer_state.pt"), out)
        shutil.copy(os.path.join(a.run, "train_log.jsonl"), os.path.join(out, a.out_name + "_train_log.jsonl"))
        with open(os.path.join(out, a.out_name + "_command.txt"), "w") as f:
            f.write(" ".join(cmd) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
