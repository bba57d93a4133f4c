"""``Engine.memory_plan()`` and ``longspec info``: the bytes a user must budget for."""
from __future__ import annotations

import json
import subprocess
import sys

from longspec import Engine, random_draft


def test_memory_plan_matches_the_model_shape(random_qwen2_dir, tmp_path):
    # The random Qwen2: 2 layers, 2 K/V heads of 16 dims; the CPU keeps K/V in fp32.
    eng = Engine(random_qwen2_dir, draft=None, device="cpu", max_context=1000, tokenizer=False)
    plan = eng.memory_plan()
    assert plan["kv_bytes_per_token"] == 2 * 2 * 2 * 16 * 4
    assert plan["context_limit"] == 1000 and plan["kv_bytes_at_context_limit"] == 1000 * 512
    assert plan["weights_bytes"] == eng.target_info["parameter_bytes"] > 0
    assert plan["draft_weights_bytes"] == plan["draft_cache_bytes"] == 0
    assert plan["total_bytes_at_context_limit"] == plan["weights_bytes"] + 512_000
    # The context limit defaults to the model's own, and a request after the plan is unaffected.
    assert Engine(random_qwen2_dir, draft=None, device="cpu", tokenizer=False).context_limit == 4096
    prompt = [5, 17, 99, 3]
    before = eng.generate(prompt, max_new_tokens=8, ignore_eos=True).tokens
    eng.memory_plan()
    assert eng.generate(prompt, max_new_tokens=8, ignore_eos=True).tokens == before

    draft = random_draft(random_qwen2_dir, str(tmp_path / "draft"), seed=1)
    spec = Engine(random_qwen2_dir, draft=draft, device="cpu", tokenizer=False).memory_plan()
    assert spec["draft_weights_bytes"] > 0 and spec["draft_cache_bytes"] > 0
    assert spec["kv_bytes_per_token"] == 512 and spec["kv_bytes_at_context_limit"] == 4096 * 512


def test_cli_info_prints_the_memory_plan(random_qwen2_dir):
    r = subprocess.run([sys.executable, "-m", "longspec", "info", "--target", random_qwen2_dir, "--draft", "none",
                        "--device", "cpu", "--max-context", "2048"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    memory = json.loads(r.stdout)["memory"]
    assert memory["kv_bytes_per_token"] == 512 and memory["kv_bytes_at_context_limit"] == 2048 * 512
    assert "memory plan (cpu)" in r.stderr and "512 B/token" in r.stderr and "1.0 MiB at 2048 tokens" in r.stderr
