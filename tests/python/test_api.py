"""The Python API: argument checking (errors name the argument), clear errors for bad files, the
engine staying usable after any error, stop conditions, streaming, chat, and the CLI."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import longspec
from longspec import Engine


@pytest.fixture(scope="module")
def eng(random_qwen2_dir):
    return Engine(random_qwen2_dir, draft=None, device="cpu", tokenizer=False)


@pytest.fixture(scope="module")
def smol(smollm2_gguf):
    return Engine(smollm2_gguf, draft=None, device="cpu")


PROMPT = [5, 17, 99, 3, 250, 7]


@pytest.mark.parametrize("kwargs,exc,word", [
    (dict(max_new_tokens=-1), ValueError, "max_new_tokens"),
    (dict(max_new_tokens=2.5), TypeError, "max_new_tokens"),
    (dict(max_new_tokens=True), TypeError, "max_new_tokens"),
    (dict(temperature=-0.5), ValueError, "temperature"),
    (dict(temperature=float("nan")), ValueError, "temperature"),
    (dict(temperature="hot"), TypeError, "temperature"),
    (dict(top_p=0.0), ValueError, "top_p"),
    (dict(top_p=1.5), ValueError, "top_p"),
    (dict(top_k=-1), ValueError, "top_k"),
    (dict(seed=-3), ValueError, "seed"),
    (dict(seed=2 ** 64), ValueError, "seed"),
    (dict(stop_token_ids=[10 ** 9]), ValueError, "stop_token_ids"),
    (dict(stop_token_ids="a"), TypeError, "stop_token_ids"),
    (dict(tree=[4, 0]), ValueError, "tree"),
    (dict(tree="4,16"), TypeError, "tree"),
    (dict(ignore_eos="yes"), TypeError, "ignore_eos"),
    (dict(speculative=1), TypeError, "speculative"),
])
def test_bad_sampling_arguments_name_the_argument(eng, kwargs, exc, word):
    with pytest.raises(exc, match=word):
        eng.generate(PROMPT, **kwargs)


@pytest.mark.parametrize("prompt,exc,word", [
    ([], ValueError, "prompt"),
    ([1, -2], ValueError, r"prompt\[1\]"),
    ([1, 10 ** 6], ValueError, "vocabulary"),
    ([1, "a"], TypeError, r"prompt\[1\]"),
    (3.5, TypeError, "prompt"),
    ("text", ValueError, "tokenizer"),  # this engine was made without a tokenizer
])
def test_bad_prompts_name_the_prompt(eng, prompt, exc, word):
    with pytest.raises(exc, match=word):
        eng.generate(prompt)


def test_engine_is_usable_after_errors(eng):
    ref = eng.generate(PROMPT, max_new_tokens=16, ignore_eos=True)
    for bad in ([], [1, -1]):
        with pytest.raises(ValueError):
            eng.generate(bad)
    with pytest.raises(ValueError):
        eng.generate(list(range(5000)))  # longer than the model's context (4096)
    assert eng.generate(PROMPT, max_new_tokens=16, ignore_eos=True).tokens == ref.tokens


def test_constructor_arguments(random_qwen2_dir, tmp_path):
    with pytest.raises(TypeError, match="target"):
        Engine(123)
    with pytest.raises(FileNotFoundError, match="target"):
        Engine(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="device"):
        Engine(random_qwen2_dir, device="tpu")
    with pytest.raises(ValueError, match="num_threads"):
        Engine(random_qwen2_dir, num_threads=-1)
    with pytest.raises(TypeError, match="tree"):
        Engine(random_qwen2_dir, tree=5)
    with pytest.raises(FileNotFoundError, match="draft"):
        Engine(random_qwen2_dir, draft=str(tmp_path / "nodraft"), tokenizer=False)
    if not longspec.cuda_available():
        with pytest.raises(NotImplementedError, match="cuda"):
            Engine(random_qwen2_dir, device="cuda", tokenizer=False)


def test_corrupt_model_files_raise_value_error(smollm2_gguf, random_qwen2_dir, tmp_path):
    data = open(smollm2_gguf, "rb").read(3_000_000)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data)
    with pytest.raises(ValueError):
        Engine(str(cut), tokenizer=False)
    # A sharded checkpoint with one shard truncated.
    bad = tmp_path / "qwen_bad"
    shutil.copytree(random_qwen2_dir, bad)
    shard = sorted(p for p in os.listdir(bad) if p.endswith(".safetensors"))[0]
    raw = open(bad / shard, "rb").read()
    (bad / shard).write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="safetensors"):
        Engine(str(bad), tokenizer=False)
    # Not a model at all.
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"hello world" * 100)
    with pytest.raises(ValueError):
        Engine(str(junk), tokenizer=False)


def test_stop_tokens_max_new_tokens_and_context(random_qwen2_dir, eng):
    ref = eng.generate(PROMPT, max_new_tokens=30, ignore_eos=True).tokens
    stop = ref[10]
    out = eng.generate(PROMPT, max_new_tokens=30, ignore_eos=True, stop_token_ids=[stop])
    assert out.tokens == ref[: ref.index(stop) + 1] and out.finish_reason == "stop"
    assert eng.generate(PROMPT, max_new_tokens=0).tokens == []
    small = Engine(random_qwen2_dir, max_context=40, tokenizer=False)
    out = small.generate(list(range(1, 37)), max_new_tokens=100, ignore_eos=True)
    assert len(out.tokens) == 4 and out.finish_reason == "context_full"
    with pytest.raises(ValueError, match="context"):
        small.generate(list(range(1, 41)))


def test_eos_from_the_checkpoint_ends_generation(smol):
    out = smol.chat("Say hello.", max_new_tokens=200)
    assert out.finish_reason == "eos"
    assert out.tokens[-1] in smol.target_info["eos_token_ids"]
    assert out.text and "<|im_end|>" not in out.text


def test_sampling_is_reproducible_by_seed(eng):
    a = eng.generate(PROMPT, max_new_tokens=20, temperature=0.9, top_p=0.95, top_k=50, seed=7, ignore_eos=True)
    b = eng.generate(PROMPT, max_new_tokens=20, temperature=0.9, top_p=0.95, top_k=50, seed=7, ignore_eos=True)
    c = eng.generate(PROMPT, max_new_tokens=20, temperature=0.9, top_p=0.95, top_k=50, seed=8, ignore_eos=True)
    assert a.tokens == b.tokens and a.tokens != c.tokens


def test_text_stream_and_chat(smol):
    out = smol.generate("The capital of France is", max_new_tokens=12, ignore_eos=True)
    assert isinstance(out.text, str) and len(out.tokens) == 12
    pieces = list(smol.stream("The capital of France is", max_new_tokens=12, ignore_eos=True))
    assert "".join(pieces) == out.text
    assert smol.last_stream_output.tokens == out.tokens
    logits = smol.prompt_logits("The capital of France is")
    assert logits.shape == (49152,) and np.isfinite(logits).all()


def test_callback_can_stop_generation(eng):
    seen = []

    def cb(new):
        seen.extend(new)
        return len(seen) < 5

    out = eng.generate(PROMPT, max_new_tokens=50, ignore_eos=True, callback=cb)
    assert out.tokens == seen and len(out.tokens) == 5


def test_cli_generate_and_info(smollm2_gguf):
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-m", "longspec", "generate", "--target", smollm2_gguf, "--draft", "none",
                        "--max-new-tokens", "8", "Hello, my name is"], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() and "tok/s" in r.stderr
    r = subprocess.run([sys.executable, "-m", "longspec", "info", "--target", smollm2_gguf, "--draft", "none"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and '"architecture": "llama"' in r.stdout
    r = subprocess.run([sys.executable, "-m", "longspec", "generate", "--target", "/nonexistent/model.gguf", "x"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "error" in r.stderr


def test_one_engine_shared_by_threads_gives_each_caller_its_own_tokens(eng):
    import threading

    prompts = [[5 + i, 17, 99 + 3 * i, 3, 250, 7 + i] for i in range(4)]
    want = [eng.generate(p, max_new_tokens=24, ignore_eos=True).tokens for p in prompts]
    got, errors = [None] * 4, []

    def worker(i):
        try:
            for _ in range(3):
                toks = eng.generate(prompts[i], max_new_tokens=24, ignore_eos=True).tokens
                if got[i] is not None and got[i] != toks:
                    errors.append(i)
                got[i] = toks
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and got == want


def test_calling_the_engine_from_its_own_callback_is_a_clear_error(eng):
    alone = eng.generate(PROMPT, max_new_tokens=12, ignore_eos=True).tokens
    inner_errors = []

    def cb(new):
        try:
            eng.generate(PROMPT, max_new_tokens=2)
        except ValueError as exc:
            inner_errors.append(str(exc))
        return True

    out = eng.generate(PROMPT, max_new_tokens=12, ignore_eos=True, callback=cb)
    assert inner_errors and "callback" in inner_errors[0]
    assert out.tokens == alone  # the running request was not disturbed


def test_leaving_a_stream_early_stops_generation(smol):
    fresh = smol.generate("Once upon a time", max_new_tokens=16, ignore_eos=True).tokens
    for i, _ in enumerate(smol.stream("The history of the Roman empire", max_new_tokens=400, ignore_eos=True)):
        if i == 2:
            break
    # The engine is free at once and computes the next request exactly.
    assert smol.generate("Once upon a time", max_new_tokens=16, ignore_eos=True).tokens == fresh
    # An interpreter that leaves a stream and exits ends cleanly (no abort from a live worker).
    code = ("import longspec; e = longspec.Engine(%r, draft=None, device='cpu')\n"
            "for i, piece in enumerate(e.stream('Tell me a long story', max_new_tokens=500, ignore_eos=True)):\n"
            "    if i == 1: break\n" % smol.target_path)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]


def test_thread_count_is_bounded(random_qwen2_dir):
    with pytest.raises(ValueError, match="num_threads"):
        Engine(random_qwen2_dir, num_threads=100000, tokenizer=False)


def test_error_contract_for_out_of_range_and_odd_arguments(eng, random_qwen2_dir, tmp_path):
    with pytest.raises(ValueError, match="max_new_tokens"):
        eng.generate(PROMPT, max_new_tokens=2 ** 31)
    with pytest.raises(ValueError, match="top_k"):
        eng.generate(PROMPT, top_k=2 ** 40)
    with pytest.raises(ValueError, match=r"tree\[0\]"):
        eng.generate(PROMPT, tree=[2 ** 40])
    with pytest.raises(TypeError, match="callback must return a bool"):
        eng.generate(PROMPT, max_new_tokens=4, callback=lambda new: "yes")
    assert eng.generate(PROMPT, max_new_tokens=3, ignore_eos=True).tokens  # still usable
    a_file = tmp_path / "draft.bin"
    a_file.write_bytes(b"not a draft")
    with pytest.raises(ValueError, match="draft model.*neither a checkpoint directory nor a GGUF file"):
        Engine(random_qwen2_dir, draft=str(a_file), tokenizer=False)
    r = subprocess.run([sys.executable, "-m", "longspec", "generate", "--target", random_qwen2_dir, "--tree", ",,,",
                        "x"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "tree" in r.stderr


def test_ctrl_c_stops_generation_within_a_round_and_leaves_the_engine_usable(smollm2_gguf):
    import signal
    import time

    # The child restores Python's own SIGINT handler: a runner started in the background of a
    # non-interactive shell hands its children SIGINT ignored, and Python then never installs it.
    code = (
        "import signal, sys, time, longspec\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "e = longspec.Engine(%r, draft=None, device='cpu')\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    e.generate('Write a very long story.', max_new_tokens=5000, ignore_eos=True)\n"
        "    print('finished', flush=True)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "print('usable', len(e.generate('Hi', max_new_tokens=3, ignore_eos=True).tokens), flush=True)\n"
        % smollm2_gguf)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(3.0)
    sent = time.time()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert "interrupted" in out and "usable 3" in out, (out, err[-2000:])
    assert time.time() - sent < 30  # a round, not the 5000 tokens
