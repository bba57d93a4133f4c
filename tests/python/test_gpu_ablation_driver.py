"""bench/train/gpu_ablation.py on the CPU: two arms trained by the same command on their own data,
each evaluated beside a baseline, kept checkpoints evaluated too, and the summary holding it all."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _write_data(path: Path, vocab: int, seed: int) -> None:
    from longspec.training.data import save_token_shards

    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    save_token_shards(path / "train_packed.npz", rng.integers(0, vocab, (32, 64)).astype(np.uint32))
    save_token_shards(path / "heldout_long.npz", [rng.integers(0, vocab, 400).astype(np.uint32) for _ in range(3)])


def test_ablation_driver_trains_every_arm_with_one_command_and_evaluates_them(tmp_path):
    pytest.importorskip("torch")
    from conftest import make_random_qwen2

    target = make_random_qwen2(str(tmp_path / "t"), seed=7, vocab=128, hidden=32, layers=2, heads=2, kv_heads=1,
                               inter=64, max_pos=4096, shard=False)
    for arm, seed in (("a", 1), ("b", 2)):
        _write_data(tmp_path / arm, 128, seed)
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "bench/train/gpu_ablation.py"), "--model", target, "--device", "cpu",
           "--runs", str(tmp_path / "runs"), "--arm", f"a={tmp_path / 'a'}", "--arm", f"b={tmp_path / 'b'}",
           "--arm-args", "b=--distill 0.5 --distill-temperature 0.5",
           "--eval", f"held={tmp_path / 'a'}", "--contexts", "128", "--trees", "2,2", "--docs", "2",
           "--new-tokens", "6", "--checkpoint-tau", "--",
           "--stage1-steps", "8", "--batch-size", "2", "--seq-len", "32", "--window", "8", "--seed", "0",
           "--save-every", "4", "--keep-checkpoints", "--eval-every", "4", "--eval-seqs", "2", "--eval-len", "64"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OUT=str(out)), timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["arms"]) == {"a", "b"} and all(x["exit"] == 0 for x in summary["arms"].values())
    assert all(x["last_heldout"]["step"] == 8 for x in summary["arms"].values())
    # The same command for both arms, but for the data, the run directory and b's own arguments.
    commands = [(out / arm / "command.txt").read_text().split() for arm in "ab"]
    strip = lambda c: [w for w in c if not w.startswith(str(tmp_path))]  # noqa: E731
    own = ["--distill", "0.5", "--distill-temperature", "0.5"]
    assert strip(commands[0]) + own == strip(commands[1]) and commands[0] != commands[1]
    assert summary["arms"]["b"]["arm_args"] == own and summary["arms"]["a"]["arm_args"] == []
    for arm in "ab":
        assert (out / arm / "model.safetensors").is_file() and (out / arm / "train_log.jsonl").is_file()
        tau = summary["tau"]["held"][arm]["128/2,2"]
        assert 1.0 <= tau <= 3.0
        assert sorted(summary["checkpoint_tau"][arm]) == ["4", "8"]
