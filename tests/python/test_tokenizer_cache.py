"""The GGUF tokenizer cache: a converted tokenizer is saved once under the longspec cache, reused
while its GGUF file is unchanged, rebuilt when the file changes or the entry is damaged, and read
without transformers (or torch) when the ``tokenizers`` library reproduces transformers.

The cache tests stand a small file in for the GGUF and replace the slow conversion by loading
SmolLM2's real tokenizer from a directory, counting the conversions; the real conversion is covered
by the parity test on the SmolLM2 GGUF."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import longspec.tokenizer as tokmod
from longspec.tokenizer import Tokenizer

TEXTS = ["Write a haiku about the sea.", "  two spaces\tand a tab\n", "naïve café 日本 🙂", "x = [i ** 2 for i in r]"]
CHATS = [[{"role": "user", "content": "Hi!"}],
         [{"role": "system", "content": "Terse."}, {"role": "user", "content": "a"},
          {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]]


def _entries(cache) -> list[str]:
    root = cache / "tokenizers"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


@pytest.fixture(scope="module")
def smol_hf_tokenizer(smollm2_gguf):
    return Tokenizer.from_checkpoint(smollm2_gguf).hf


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch, smol_hf_tokenizer):
    """(path of a stand-in GGUF file, cache directory, list of conversions made)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LONGSPEC_CACHE", str(cache))
    conversions = []

    def convert(path):
        conversions.append(path)
        return smol_hf_tokenizer  # what the conversion of the real file gives

    monkeypatch.setattr(tokmod, "_convert_gguf", convert)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 16)
    return gguf, cache, conversions


def test_second_load_hits_the_cache_and_skips_transformers(fake_gguf):
    gguf, cache, conversions = fake_gguf
    first = Tokenizer.from_checkpoint(str(gguf))
    assert len(conversions) == 1 and not first.fast
    [entry] = _entries(cache)
    meta = json.loads((cache / "tokenizers" / entry / "longspec.json").read_text())
    assert meta["fast"] is True and meta["source"]["size"] == gguf.stat().st_size
    second = Tokenizer.from_checkpoint(str(gguf))
    assert len(conversions) == 1 and second.fast
    for text in TEXTS:
        assert second.encode(text) == first.encode(text)
    for chat in CHATS:
        assert second.apply_chat_template(chat) == first.apply_chat_template(chat)


def test_a_changed_file_rebuilds_its_entry(fake_gguf):
    gguf, cache, conversions = fake_gguf
    Tokenizer.from_checkpoint(str(gguf))
    st = gguf.stat()
    os.utime(gguf, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same bytes, touched
    assert Tokenizer.from_checkpoint(str(gguf)).encode("x") and len(conversions) == 2
    assert Tokenizer.from_checkpoint(str(gguf)).fast and len(conversions) == 2
    with open(gguf, "ab") as f:  # new content: a new fingerprint, a new entry
        f.write(b"more")
    Tokenizer.from_checkpoint(str(gguf))
    assert len(conversions) == 3 and len(_entries(cache)) == 2
    assert Tokenizer.from_checkpoint(str(gguf)).fast and len(conversions) == 3


@pytest.mark.parametrize("damage", ["garbage tokenizer.json", "empty tokenizer.json", "garbage longspec.json",
                                    "no tokenizer_config.json", "broken chat template", "old metadata format"])
def test_a_corrupt_entry_is_rebuilt_not_fatal(fake_gguf, damage):
    gguf, cache, conversions = fake_gguf
    reference = Tokenizer.from_checkpoint(str(gguf)).encode(TEXTS[2])
    entry = cache / "tokenizers" / _entries(cache)[0]
    if damage == "garbage tokenizer.json":
        (entry / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": 3')
    elif damage == "empty tokenizer.json":
        (entry / "tokenizer.json").write_bytes(b"")
    elif damage == "garbage longspec.json":
        (entry / "longspec.json").write_bytes(b"\x00\xff not json")
    elif damage == "no tokenizer_config.json":
        (entry / "tokenizer_config.json").unlink()
    elif damage == "broken chat template":
        (entry / "chat_template.jinja").write_text("{% for m in messages %}{{ m['content'] }")
    else:
        meta = json.loads((entry / "longspec.json").read_text())
        (entry / "longspec.json").write_text(json.dumps({**meta, "format": 0}))
    tok = Tokenizer.from_checkpoint(str(gguf))
    assert tok.encode(TEXTS[2]) == reference and len(conversions) == 2
    assert Tokenizer.from_checkpoint(str(gguf)).fast and len(conversions) == 2  # repaired


def test_a_tokenizer_the_fast_path_cannot_reproduce_stays_on_transformers(fake_gguf, monkeypatch):
    gguf, _, conversions = fake_gguf
    monkeypatch.setattr(tokmod, "_fast_reproduces", lambda fast, hf: False)
    Tokenizer.from_checkpoint(str(gguf))
    again = Tokenizer.from_checkpoint(str(gguf))
    assert len(conversions) == 1 and not again.fast  # cached, but read through transformers
    assert again.apply_chat_template(CHATS[0])


def test_an_unusable_cache_only_costs_speed(fake_gguf, monkeypatch, tmp_path):
    gguf, _, conversions = fake_gguf
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LONGSPEC_CACHE", str(blocker / "cache"))
    for _ in range(2):
        assert Tokenizer.from_checkpoint(str(gguf)).encode("hello")
    assert len(conversions) == 2


def test_smollm2_fast_tokenizer_equals_transformers_and_imports_neither_it_nor_torch(smollm2_gguf):
    Tokenizer.from_checkpoint(smollm2_gguf)  # builds the entry if this machine has none yet
    fast = Tokenizer.from_checkpoint(smollm2_gguf)
    assert fast.fast
    eos = fast.token_to_id("<|im_end|>")
    assert eos == 2 and fast.token_to_id("no such token, surely") is None
    hf = Tokenizer.from_checkpoint(smollm2_gguf)
    assert hf.hf is not None  # switches this one to transformers
    assert not hf.fast
    for text in TEXTS:
        ids = hf.encode(text)
        assert fast.encode(text) == ids
        assert fast.decode(ids) == hf.decode(ids) == text
        assert fast.decode(ids + [eos], skip_special_tokens=False) == hf.decode(ids + [eos], skip_special_tokens=False)
    for chat in CHATS:
        assert fast.apply_chat_template(chat) == hf.apply_chat_template(chat)
    probe = textwrap.dedent(f"""
        import sys
        from longspec.tokenizer import Tokenizer
        tok = Tokenizer.from_checkpoint({smollm2_gguf!r})
        ids = tok.apply_chat_template([{{"role": "user", "content": "Hi"}}])
        assert tok.fast and tok.decode(ids)
        print(sorted(m for m in ("torch", "transformers") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_import_longspec_stays_light():
    probe = ("import sys, longspec; "
             "print(sorted(m for m in ('torch', 'transformers', 'numpy', 'tokenizers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
