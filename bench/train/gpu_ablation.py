#!/usr/bin/env python3
"""An ablation at equal budget on the GPU machine: the same `train-draft` command for every arm,
each arm with its own data directory, all arms at once, one GPU each; then tau of every arm's
draft (and of the baselines named) on the evaluation sets, on the GPU, in the same call.

    python3 bench/train/gpu_ablation.py --model SmolLM2-135M-Instruct.Q4_1.gguf --runs /tmp/runs/x \
        --arm old=/tmp/data/A --arm manuals=/tmp/data/B --baseline shipped=models/smollm2-... \
        --eval books=/tmp/data/books:NAME1,NAME2 --eval heldout=/tmp/data/A \
        -- --init models/smollm2-... --stage1-steps 4000 --stage2-steps 1200 --distill 1.0 ...

Arm i trains on GPU i modulo the GPUs present (CUDA_VISIBLE_DEVICES; on one GPU the arms share
it and each runs slower, at the same budget in steps), with the arm's data directory as --data and
everything after `--` as the rest of the command (identical for all arms: same steps, seed, init).
An arm that tests a training option rather than data names it with --arm-args NAME="ARGS"
(appended to that arm's command only, e.g. --arm-args t05="--distill-temperature 0.5").
An --eval set is DATA_DIR[:name fragment,...] (eval-draft's --data and --include). Results go to
$OUT: each arm's draft (config.json + model.safetensors), its training log and exact command, the
eval JSON per (draft, set), and summary.json with the held-out losses and taus side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time


def join_model(name: str) -> str:
    dest = f"/tmp/models/{name}"
    if not os.path.isfile(dest):
        subprocess.run([sys.executable, "/tmp/models/parts.py", "join", "/tmp/models/parts", name, dest], check=True)
    return dest


def named(spec: str) -> tuple[str, str]:
    name, _, value = spec.partition("=")
    if not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {spec!r}")
    return name, value


def gpu_count() -> int:
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
    except FileNotFoundError:  # no NVIDIA driver: the arms run one after another's GPU 0 (or the CPU)
        return 1
    return max(1, sum(line.startswith("GPU ") for line in listed.splitlines()))


def last_heldout(log_path: str) -> dict | None:
    """The last held-out evaluation the training log holds (rows with a 'heldout' key), if any."""
    rows = [json.loads(line) for line in open(log_path)] if os.path.isfile(log_path) else []
    rows = [r for r in rows if any(k.startswith("heldout") for k in r)]
    return rows[-1] if rows else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="the target's file name under /tmp/models (joined from parts), "
                    "or a path to the target itself")
    ap.add_argument("--device", default="cuda", help="for training and evaluation (cpu: the driver's own test)")
    ap.add_argument("--runs", required=True, help="directory for the arms' run directories")
    ap.add_argument("--arm", type=named, action="append", required=True, help="NAME=DATA_DIR")
    ap.add_argument("--arm-args", type=named, action="append", default=[],
                    help='NAME="ARGS": train-draft arguments for that arm only (the option under test)')
    ap.add_argument("--baseline", type=named, action="append", default=[], help="NAME=DRAFT_DIR, evaluated too")
    ap.add_argument("--eval", type=named, action="append", default=[], help="NAME=DATA_DIR[:include,...]")
    ap.add_argument("--contexts", default="1024,4096,8192")
    ap.add_argument("--trees", default="4,16,16,16,16")
    ap.add_argument("--docs", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--checkpoint-tau", action="store_true",
                    help="also evaluate every kept checkpoint of every arm (train-draft --keep-checkpoints "
                         "saves one each --save-every steps): tau against the step, on the first --eval set")
    ap.add_argument("rest", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    out = os.environ.get("OUT", "/tmp/longspec_out")
    os.makedirs(out, exist_ok=True)
    target = a.model if os.path.exists(a.model) else join_model(a.model)
    common = [x for x in a.rest if x != "--"]
    arm_args = {name: shlex.split(args) for name, args in a.arm_args}
    unknown = set(arm_args) - {name for name, _ in a.arm}
    if unknown:
        ap.error(f"--arm-args for arms that do not exist: {', '.join(sorted(unknown))}")

    procs, commands = {}, {}
    gpus = gpu_count()
    t0 = time.time()
    for i, (name, data) in enumerate(a.arm):
        gpu = i % gpus
        run = os.path.join(a.runs, name)
        shutil.rmtree(run, ignore_errors=True)
        cmd = [sys.executable, "-m", "longspec", "train-draft", "--target", target, "--data", data, "--out", run,
               "--no-resume", "--device", a.device] + common + arm_args.get(name, [])
        commands[name] = cmd
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(gpu))
        log = open(os.path.join(out, f"{name}_stdout.log"), "w")
        procs[name] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        print(f"arm {name} on GPU {gpu}: {' '.join(cmd)}", flush=True)
    codes = {name: p.wait() for name, p in procs.items()}
    print(f"training: {time.time() - t0:.0f} s, exit codes {codes}", flush=True)

    drafts = dict(a.baseline)
    summary = {"model": a.model, "arms": {}, "baselines": dict(a.baseline), "train_seconds": round(time.time() - t0, 1)}
    for name, _ in a.arm:
        run = os.path.join(a.runs, name)
        dest = os.path.join(out, name)
        os.makedirs(dest, exist_ok=True)
        with open(os.path.join(dest, "command.txt"), "w") as f:
            f.write(" ".join(commands[name]) + "\n")
        if os.path.isfile(os.path.join(run, "train_log.jsonl")):
            shutil.copy(os.path.join(run, "train_log.jsonl"), os.path.join(dest, "train_log.jsonl"))
        summary["arms"][name] = {"exit": codes[name], "data": dict(a.arm)[name], "arm_args": arm_args.get(name, []),
                                 "last_heldout": last_heldout(os.path.join(run, "train_log.jsonl"))}
        if codes[name] == 0:
            for f in ("config.json", "model.safetensors"):
                shutil.copy(os.path.join(run, "draft", f), os.path.join(dest, f))
            drafts[name] = os.path.join(run, "draft")

    def evaluate(draft: str, name: str, set_name: str, spec: str) -> dict | None:
        """tau of one draft on one evaluation set ({"context/tree": tau}), its JSON kept in $OUT."""
        data, _, include = spec.partition(":")
        path = os.path.join(out, f"tau_{name}_{set_name}.json")
        cmd = [sys.executable, "-m", "longspec", "eval-draft", "--target", target, "--draft", draft,
               "--data", data, "--contexts", a.contexts, "--trees", a.trees, "--docs", str(a.docs),
               "--new-tokens", str(a.new_tokens), "--device", a.device, "--out", path]
        if include:
            cmd += ["--include", include]
        t1 = time.time()
        done = subprocess.run(cmd, capture_output=True, text=True)
        print(f"eval {name} on {set_name}: exit {done.returncode} in {time.time() - t1:.0f} s\n{done.stdout[-600:]}"
              f"{done.stderr[-1500:] if done.returncode else ''}", flush=True)
        if done.returncode != 0:
            return None
        return {f"{r['context']}/{','.join(map(str, r['tree']))}": round(r["tau"], 3)
                for r in json.load(open(path))["rows"]}

    summary["tau"] = {}
    for set_name, spec in a.eval:
        for name, draft in drafts.items():
            rows = evaluate(draft, name, set_name, spec)
            if rows is not None:
                summary["tau"].setdefault(set_name, {})[name] = rows
    if a.checkpoint_tau and a.eval:
        set_name, spec = a.eval[0]
        for name, _ in a.arm:
            root = os.path.join(a.runs, name, "checkpoints")
            steps = sorted(os.listdir(root)) if os.path.isdir(root) else []
            for step_dir in steps:  # step_NNNNNN
                rows = evaluate(os.path.join(root, step_dir), f"{name}_{step_dir}", set_name, spec)
                if rows is not None:
                    summary.setdefault("checkpoint_tau", {}).setdefault(name, {})[int(step_dir[5:])] = rows
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary["tau"], indent=1))
    return 0 if all(c == 0 for c in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
