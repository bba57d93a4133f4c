"""README's error table ("## Errors"), row by row.

The table is parsed from README.md: every row must have a case here and every case a row, and
each case raises the Python exception its row names. Where a case goes through the C++ engine the
exception carries ``status_code``, which must be the row's C++ code, and every row that names a
C++ code has at least one such case (some call ``longspec._C`` directly, past the Python checks,
so that the C++ side of the row is checked too). After each row the engine still works.
"""
from __future__ import annotations

import builtins
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import longspec
from longspec import Engine, _C

README = Path(__file__).resolve().parents[2] / "README.md"
PROMPT = [5, 17, 99, 3, 250, 7]


def readme_rows() -> dict[str, tuple[str, str | None]]:
    """label -> (Python exception name, C++ StatusCode name or None), from README's table."""
    section = README.read_text().split("\n## Errors\n", 1)[1]
    rows: dict[str, tuple[str, str | None]] = {}
    in_table = False
    for line in section.splitlines():
        if not line.startswith("|"):
            if in_table:
                break
            continue
        in_table = True
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        label = re.match(r"\*\*(.+?)\*\*", cells[0])
        if label is None:
            continue  # the header and its rule
        assert len(cells) == 3, line
        exc = re.fullmatch(r"`(\w+)`", cells[1])
        assert exc is not None, line
        code = re.search(r"`([A-Z_]+)`", cells[2])
        rows[label.group(1)] = (exc.group(1), code.group(1) if code else None)
    return rows


ROWS = readme_rows()


# ---------------------------------------------------------------------------------------------
# Files for the cases

def _copy(src: str, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_config(d: Path, **changes) -> Path:
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def _shards(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.name.endswith(".safetensors"))


def _rewrite_shard(d: Path, edit) -> Path:
    """Loads the first shard, applies edit(dict of arrays) and writes it back with the index kept
    consistent (the weight map follows the tensors' names)."""
    from safetensors.numpy import load_file, save_file

    shard = _shards(d)[0]
    tensors = load_file(str(shard))
    before = set(tensors)
    edit(tensors)
    save_file(tensors, str(shard))
    index = d / "model.safetensors.index.json"
    if index.exists():
        idx = json.loads(index.read_text())
        for gone in before - set(tensors):
            del idx["weight_map"][gone]
        for new in set(tensors) - before:
            idx["weight_map"][new] = shard.name
        index.write_text(json.dumps(idx))
    return d


def _rename_first_tensor(tensors: dict) -> None:
    name = sorted(tensors)[0]
    tensors[name + "_renamed"] = tensors.pop(name)


def _reshape_first_tensor(tensors: dict) -> None:
    name = sorted(tensors)[0]
    tensors[name] = np.zeros((3, 5), dtype=tensors[name].dtype)


def _tiny_gguf(path: Path, *, tokenizer_model: str = "gpt2", with_merges: bool = True, vocab: int = 32) -> Path:
    """A one-layer llama GGUF with random weights and a small BPE tokenizer."""
    import gguf

    rng = np.random.default_rng(0)
    hidden, inter, head_dim = 16, 32, 8
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(inter)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_context_length(64)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model(tokenizer_model)
    w.add_token_list([chr(ord("a") + i % 26) * (1 + i // 26) for i in range(vocab)])
    w.add_token_types([1] * vocab)
    if with_merges:
        w.add_token_merges(["a a"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    shapes = {"token_embd.weight": (vocab, hidden), "blk.0.attn_q.weight": (hidden, hidden),
              "blk.0.attn_k.weight": (head_dim, hidden), "blk.0.attn_v.weight": (head_dim, hidden),
              "blk.0.attn_output.weight": (hidden, hidden), "blk.0.ffn_gate.weight": (inter, hidden),
              "blk.0.ffn_up.weight": (inter, hidden), "blk.0.ffn_down.weight": (hidden, inter),
              "output.weight": (vocab, hidden)}
    for name, shape in shapes.items():
        w.add_tensor(name, (rng.standard_normal(shape) * 0.1).astype(np.float32))
    for name in ("blk.0.attn_norm.weight", "blk.0.ffn_norm.weight", "output_norm.weight"):
        w.add_tensor(name, np.ones(hidden, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _reentrant(eng):
    inner = []

    def cb(new):
        if not inner:
            inner.append(True)
            eng.generate(PROMPT, max_new_tokens=2)  # raises; the outer generate re-raises it
        return True

    eng.generate(PROMPT, max_new_tokens=4, ignore_eos=True, callback=cb)


def _in_child_with_little_memory(target: Path) -> None:
    """Creates an Engine in a child process whose address space is capped at 2 GiB (so the
    allocation fails at once instead of succeeding lazily) and re-raises what the child saw."""
    code = ("import resource, sys, longspec\n"
            "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
            "try:\n"
            "    longspec.Engine(sys.argv[1], draft=None, device='cpu', tokenizer=False)\n"
            "except Exception as e:\n"
            "    print(type(e).__name__, getattr(e, 'status_code', None), e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    if r.stdout.strip():
        name, status, message = r.stdout.strip().split(" ", 2)
        exc = getattr(builtins, name)(message)
        exc.status_code = status
        raise exc


def _raw_generate(eng, **kw):
    """The C++ engine's generate with everything valid except what kw changes."""
    params = _C.SamplingParams(max_new_tokens=4, ignore_eos=True, speculative=False)
    for name, value in kw.items():
        setattr(params, name, value)
    return eng._engine.generate(PROMPT, params, None)


def _raw_engine(target, draft="", device="cpu", num_threads=0, max_context=0):
    return _C.Engine(target, draft, device, num_threads, max_context, [], 0, False)


# ---------------------------------------------------------------------------------------------
# One list of cases per row: (what, thunk) pairs; each thunk must raise the row's exception.

LABELS = ("wrong type", "bad argument", "context full", "missing file", "not a model", "corrupt file",
          "unsupported", "re-entrant call", "OS refused", "out of memory")


def cases(label: str, eng, qwen: str, smol_gguf: str, tmp: Path):
    if label == "wrong type":
        return [("max_new_tokens=2.5", lambda: eng.generate(PROMPT, max_new_tokens=2.5)),
                ("prompt=3.5", lambda: eng.generate(3.5)),
                ("tree='4,16'", lambda: eng.generate(PROMPT, tree="4,16")),
                ("callback -> str", lambda: eng.generate(PROMPT, max_new_tokens=2, callback=lambda n: "yes"))]
    if label == "bad argument":
        return [("temperature=-1", lambda: eng.generate(PROMPT, temperature=-1)),
                ("top_p=0", lambda: eng.generate(PROMPT, top_p=0.0)),
                ("max_new_tokens=2**31", lambda: eng.generate(PROMPT, max_new_tokens=2 ** 31)),
                ("num_threads=100000", lambda: Engine(qwen, num_threads=100000, tokenizer=False)),
                ("device='tpu'", lambda: Engine(qwen, device="tpu", tokenizer=False)),
                ("token outside the vocabulary", lambda: eng.generate([1, 10 ** 6])),
                ("tree=[4, 0]", lambda: eng.generate(PROMPT, tree=[4, 0])),
                ("empty prompt", lambda: eng.generate([])),
                ("text without a tokenizer", lambda: eng.generate("text")),
                ("C++: temperature=-1", lambda: _raw_generate(eng, temperature=-1.0)),
                ("C++: top_p=0", lambda: _raw_generate(eng, top_p=0.0)),
                ("C++: tree=[4, 0]", lambda: _raw_generate(eng, tree=[4, 0]))]
    if label == "context full":
        small = Engine(qwen, max_context=40, tokenizer=False)
        return [("41 tokens into 40", lambda: small.generate(list(range(1, 42))))]
    if label == "missing file":
        no_config = _copy(qwen, tmp / "no_config")
        (no_config / "config.json").unlink()
        no_shard = _copy(qwen, tmp / "no_shard")
        _shards(no_shard)[-1].unlink()
        no_tok = _copy(qwen, tmp / "no_tokenizer")
        for f in no_tok.iterdir():
            if f.name.startswith(("tokenizer", "vocab", "merges", "special_tokens")):
                f.unlink()
        return [("target", lambda: Engine(str(tmp / "missing"))),
                ("draft", lambda: Engine(qwen, draft=str(tmp / "nodraft"), tokenizer=False)),
                ("config.json", lambda: Engine(str(no_config), tokenizer=False)),
                ("a shard", lambda: Engine(str(no_shard), tokenizer=False)),
                ("tokenizer files", lambda: Engine(str(no_tok), tokenizer=True)),
                ("C++: target", lambda: _raw_engine(str(tmp / "missing")))]
    if label == "not a model":
        junk = tmp / "junk.bin"
        junk.write_bytes(b"hello world" * 100)
        return [("junk target", lambda: Engine(str(junk), tokenizer=False)),
                ("draft is a file", lambda: Engine(qwen, draft=str(junk), tokenizer=False)),
                ("C++: draft is a file", lambda: _raw_engine(qwen, draft=str(junk)))]
    if label == "corrupt file":
        cut = tmp / "cut.gguf"
        cut.write_bytes(open(smol_gguf, "rb").read(3_000_000))
        truncated = _copy(qwen, tmp / "truncated")
        shard = _shards(truncated)[0]
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
        header_short = _copy(qwen, tmp / "header_short")
        shard = _shards(header_short)[0]
        raw = shard.read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        shard.write_bytes(struct.pack("<Q", n - 1) + raw[8:])  # the "one byte short"
        missing_tensor = _rewrite_shard(_copy(qwen, tmp / "missing_tensor"), _rename_first_tensor)
        wrong_shape = _rewrite_shard(_copy(qwen, tmp / "wrong_shape"), _reshape_first_tensor)
        bad_json = _copy(qwen, tmp / "bad_json")
        (bad_json / "config.json").write_text('{"model_type": "qwen2", "hidden_size": 64,')
        bad_value = _edit_config(_copy(qwen, tmp / "bad_value"), num_attention_heads=5)
        missing_key = _copy(qwen, tmp / "missing_key")
        cfg = json.loads((missing_key / "config.json").read_text())
        del cfg["hidden_size"]
        (missing_key / "config.json").write_text(json.dumps(cfg))
        gguf_dir = tmp / "gguf"
        gguf_dir.mkdir()
        bad_tok = _tiny_gguf(gguf_dir / "bad_tokenizer.gguf", tokenizer_model="no-such-tokenizer")
        return [("truncated GGUF", lambda: Engine(str(cut), tokenizer=False)),
                ("truncated shard", lambda: Engine(str(truncated), tokenizer=False)),
                ("header length one byte short", lambda: Engine(str(header_short), tokenizer=False)),
                ("tensor missing inside a file", lambda: Engine(str(missing_tensor), tokenizer=False)),
                ("wrong shape", lambda: Engine(str(wrong_shape), tokenizer=False)),
                ("config.json syntax", lambda: Engine(str(bad_json), tokenizer=False)),
                ("config value out of range", lambda: Engine(str(bad_value), tokenizer=False)),
                ("config key missing", lambda: Engine(str(missing_key), tokenizer=False)),
                ("GGUF tokenizer metadata", lambda: Engine(str(bad_tok), draft=None, device="cpu"))]
    if label == "unsupported":
        arch = _edit_config(_copy(qwen, tmp / "gpt2"), model_type="gpt2")
        dynamic = {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}
        rope = _edit_config(_copy(qwen, tmp / "rope"), rope_scaling=dynamic, rope_parameters=dynamic)
        out = [("architecture", lambda: Engine(str(arch), tokenizer=False)),
               ("rope type", lambda: Engine(str(rope), tokenizer=False))]
        if not longspec.cuda_available():
            out.append(("cuda without CUDA", lambda: Engine(qwen, device="cuda", tokenizer=False)))
        return out
    if label == "re-entrant call":
        return [("generate inside its callback", lambda: _reentrant(eng))]
    if label == "OS refused":
        d = _copy(qwen, tmp / "config_is_dir")
        (d / "config.json").unlink()
        (d / "config.json").mkdir()
        loop = _copy(qwen, tmp / "config_loops")
        (loop / "config.json").unlink()
        (loop / "config.json").symlink_to(loop / "config.json")
        return [("config.json is a directory", lambda: Engine(str(d), tokenizer=False)),
                ("config.json is a symlink loop", lambda: Engine(str(loop), tokenizer=False))]
    if label == "out of memory":
        huge = _edit_config(_copy(qwen, tmp / "huge_context"), max_position_embeddings=1 << 24)
        return [("8 GiB KV cache under a 2 GiB address-space limit", lambda: _in_child_with_little_memory(huge))]
    raise AssertionError(f"README row {label!r} has no case in {__file__}")


@pytest.fixture(scope="module")
def eng(random_qwen2_dir):
    return Engine(random_qwen2_dir, draft=None, device="cpu", tokenizer=False)


def test_the_table_is_there_and_every_row_has_a_case():
    assert sorted(ROWS) == sorted(LABELS), "README's error table and this file's cases disagree"


@pytest.mark.parametrize("label", sorted(ROWS))
def test_row(label, eng, random_qwen2_dir, smollm2_gguf, tmp_path):
    exc_name, code = ROWS[label]
    exc_type = getattr(builtins, exc_name)
    ref = eng.generate(PROMPT, max_new_tokens=6, ignore_eos=True).tokens
    seen_codes = []
    for what, thunk in cases(label, eng, random_qwen2_dir, smollm2_gguf, tmp_path):
        with pytest.raises(exc_type) as info:
            thunk()
        assert type(info.value) is exc_type, f"{label} / {what}: {type(info.value).__name__}: {info.value}"
        assert str(info.value), f"{label} / {what}: empty message"
        got = getattr(info.value, "status_code", None)
        if got is not None:
            assert got == code, f"{label} / {what}: status_code {got}, README says {code}: {info.value}"
            seen_codes.append(got)
    if code is not None:
        assert seen_codes, f"{label}: no case reached the C++ engine to check {code}"
    assert eng.generate(PROMPT, max_new_tokens=6, ignore_eos=True).tokens == ref  # still usable


def test_a_missing_tensor_names_the_tensor_and_the_file(random_qwen2_dir, tmp_path):
    d = _copy(random_qwen2_dir, tmp_path / "ckpt")
    first = sorted(__import__("safetensors.numpy", fromlist=["load_file"]).load_file(str(_shards(d)[0])))[0]
    _rewrite_shard(d, _rename_first_tensor)
    with pytest.raises(ValueError) as info:
        Engine(str(d), tokenizer=False)
    assert first in str(info.value) and str(d) in str(info.value)
    assert info.value.status_code == "DATA_LOSS"
