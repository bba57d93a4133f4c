"""Text <-> token ids through the checkpoint's own tokenizer.

HF directories use their tokenizer files through transformers' AutoTokenizer. GGUF files carry an
embedded tokenizer that transformers converts on load, which costs seconds (and importing
transformers, which imports torch when it is installed, seconds more). So the conversion is done
once and saved under the longspec cache, ``tokenizers/<file fingerprint>/``:

- the files transformers saves (tokenizer.json, tokenizer_config.json, the chat template);
- ``longspec.json``, written last: the source file's size and mtime (a changed file rebuilds the
  entry) and whether the ``tokenizers`` library alone reproduces transformers on probe texts and
  chats. When it does, later loads read tokenizer.json with ``tokenizers`` and render the chat
  template with jinja2, and never import transformers.

An entry that is unreadable or corrupt is rebuilt; a cache that cannot be written only costs speed.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from datetime import datetime
from pathlib import Path
from typing import Sequence

from .models import cache_dir, file_fingerprint

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_META = "longspec.json"
_META_FORMAT = 1
_SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token")

# What the fast path must reproduce exactly before a cache entry may use it.
_PROBE_TEXTS = ("Hello world", "  leading spaces, tabs\tand\nnew lines\n\n", "Ünïcödé — 日本語 🙂 x²",
                "def f(x):\n    return x ** 2  # comment", "<|im_start|>user\nhi<|im_end|>", "1234567890 3.14159")
_PROBE_CHATS = ([{"role": "user", "content": "Write a haiku about the sea."}],
                [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"},
                 {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "2+2?"}])


def _quiet_transformers():
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers  # noqa: F401  (import after the environment is set)

    transformers.logging.set_verbosity_error()
    return transformers


class _HFBackend:
    """A transformers tokenizer."""

    def __init__(self, tok):
        self.hf = tok

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return list(self.hf(text, add_special_tokens=add_special_tokens)["input_ids"])

    def decode(self, ids: list[int], skip_special_tokens: bool) -> str:
        return self.hf.decode(ids, skip_special_tokens=skip_special_tokens)

    def has_chat_template(self) -> bool:
        return getattr(self.hf, "chat_template", None) is not None

    def chat_ids(self, messages: list[dict]) -> list[int]:
        out = self.hf.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(out, dict) or hasattr(out, "keys"):
            out = out["input_ids"]
        return [int(t) for t in out]

    def token_to_id(self, token: str) -> int | None:
        tid = self.hf.convert_tokens_to_ids(token)
        unk = getattr(self.hf, "unk_token_id", None)
        return None if tid is None or (tid == unk and token != getattr(self.hf, "unk_token", None)) else int(tid)


def _special_token_text(value) -> str | None:
    if isinstance(value, dict):  # older configs spell added tokens out as objects
        value = value.get("content")
    return value if isinstance(value, str) else None


class _FastBackend:
    """tokenizer.json through the ``tokenizers`` library and the chat template through jinja2, set
    up the way transformers renders templates (sandboxed, trim_blocks, lstrip_blocks)."""

    def __init__(self, directory: Path):
        import tokenizers

        self.directory = directory
        self.tok = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
        config = json.loads((directory / "tokenizer_config.json").read_text())
        self.special = {name: _special_token_text(config.get(name)) for name in _SPECIAL_NAMES}
        template = config.get("chat_template")
        if (directory / "chat_template.jinja").is_file():
            template = (directory / "chat_template.jinja").read_text()
        if template is not None and not isinstance(template, str):
            raise ValueError("named chat templates are left to transformers")
        self._template_text = template
        # Compiled now, so that a damaged template is found while loading (and rebuilt).
        self._template = _compile_template(template) if template is not None else None

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return self.tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int], skip_special_tokens: bool) -> str:
        return self.tok.decode(ids, skip_special_tokens=skip_special_tokens)

    def has_chat_template(self) -> bool:
        return self._template_text is not None

    def render_chat(self, messages: list[dict]) -> str:
        return self._template.render(messages=messages, add_generation_prompt=True, **self.special)

    def chat_ids(self, messages: list[dict]) -> list[int]:
        # transformers encodes a rendered chat without adding special tokens: the template has them.
        return self.encode(self.render_chat(messages), add_special_tokens=False)

    def token_to_id(self, token: str) -> int | None:
        tid = self.tok.token_to_id(token)
        return None if tid is None else int(tid)


def _compile_template(text: str):
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # Jinja's own tojson escapes HTML characters, which a prompt must not have.
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(text)


def _fast_reproduces(fast: _FastBackend, hf: _HFBackend) -> bool:
    """Whether the fast path gives transformers' ids, text and chats on the probes."""
    try:
        for text in _PROBE_TEXTS:
            for special in (True, False):
                ids = hf.encode(text, special)
                if fast.encode(text, special) != ids:
                    return False
                for skip in (True, False):
                    if fast.decode(ids, skip) != hf.decode(ids, skip):
                        return False
        if fast.has_chat_template() != hf.has_chat_template():
            return False
        if hf.has_chat_template():
            return all(fast.chat_ids(chat) == hf.chat_ids(chat) for chat in _PROBE_CHATS)
        return True
    except Exception:  # noqa: BLE001 - a template or a tokenizer the fast path cannot handle
        return False


# ---------------------------------------------------------------------------------------------
# The GGUF cache
def _source_stamp(path: str) -> dict:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_entry(entry: Path, stamp: dict):
    """The backend of a valid cache entry, or None when it is missing, stale or corrupt."""
    try:
        meta = json.loads((entry / _META).read_text())
        if not isinstance(meta, dict) or meta.get("format") != _META_FORMAT or meta.get("source") != stamp:
            return None
        if meta.get("fast") is True:
            return _FastBackend(entry)
        transformers = _quiet_transformers()
        return _HFBackend(transformers.AutoTokenizer.from_pretrained(str(entry)))
    except (ImportError, MemoryError):
        raise
    except Exception:  # noqa: BLE001 - whatever is wrong with the entry, it gets rebuilt
        return None


def _convert_gguf(path: str):
    """transformers' tokenizer for a GGUF file (the slow conversion the cache exists to avoid)."""
    transformers = _quiet_transformers()
    return transformers.AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(path)),
                                                      gguf_file=os.path.basename(path))


def _write_entry(entry: Path, hf: _HFBackend, stamp: dict) -> None:
    """Saves a new entry next to the old one and swaps it in, so that a reader never sees half of
    one; losing a race with another process building the same entry is fine."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=entry.name + ".", suffix=".tmp", dir=entry.parent))
    try:
        hf.hf.save_pretrained(str(tmp))
        try:
            fast = _fast_reproduces(_FastBackend(tmp), hf)
        except Exception:  # the fast path cannot even load what transformers saved
            fast = False
        (tmp / _META).write_text(json.dumps({"format": _META_FORMAT, "source": stamp, "fast": fast}))
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_gguf(path: str):
    stamp = _source_stamp(path)
    try:
        entry = cache_dir() / "tokenizers" / file_fingerprint(path)
    except OSError:  # no usable cache directory: convert every time
        entry = None
    backend = _read_entry(entry, stamp) if entry is not None else None
    if backend is not None:
        return backend
    backend = _HFBackend(_convert_gguf(path))
    if entry is not None:
        try:
            _write_entry(entry, backend, stamp)
        except OSError:
            pass  # a read-only or full cache only costs speed
    return backend


def has_tokenizer(path: str) -> bool:
    """Whether a checkpoint carries a tokenizer (a GGUF file always embeds one)."""
    return not os.path.isdir(path) or any(os.path.isfile(os.path.join(path, f)) for f in _TOKENIZER_FILES)


class Tokenizer:
    """A thin wrapper: encode(str) -> ids, decode(ids) -> str, chat templates."""

    def __init__(self, backend):
        self._backend = backend if isinstance(backend, (_HFBackend, _FastBackend)) else _HFBackend(backend)

    @classmethod
    def from_checkpoint(cls, path: str) -> "Tokenizer":
        """The tokenizer of a checkpoint directory or GGUF file.

        Raises FileNotFoundError when a directory has no tokenizer files and ValueError when the
        tokenizer data is corrupt (transformers and tokenizers raise a zoo of types for that,
        bare ``Exception`` included), as README's error table says.
        """
        if not has_tokenizer(path):
            raise FileNotFoundError(f"{path}: no tokenizer files ({', '.join(_TOKENIZER_FILES)}); "
                                    "pass tokenizer=False to work with token ids")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if os.path.isdir(path):
                    return cls(_HFBackend(_quiet_transformers().AutoTokenizer.from_pretrained(path)))
                return cls(_load_gguf(path))
        except (FileNotFoundError, MemoryError, ImportError):
            raise
        except Exception as exc:  # noqa: BLE001 - every other failure means the data is bad
            raise ValueError(f"{path}: cannot load the tokenizer: {type(exc).__name__}: {exc}") from exc

    @property
    def fast(self) -> bool:
        """True when transformers is not involved (a verified GGUF cache entry)."""
        return isinstance(self._backend, _FastBackend)

    @property
    def hf(self):
        """The transformers tokenizer (loaded from the cache entry on first use on the fast path)."""
        if isinstance(self._backend, _FastBackend):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tok = _quiet_transformers().AutoTokenizer.from_pretrained(str(self._backend.directory))
            self._backend = _HFBackend(tok)
        return self._backend.hf

    def encode(self, text: str) -> list[int]:
        return self._backend.encode(text, True)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._backend.decode(list(ids), skip_special_tokens)

    def apply_chat_template(self, messages: list[dict]) -> list[int]:
        if not self._backend.has_chat_template():
            raise ValueError("messages: this checkpoint's tokenizer has no chat template")
        return self._backend.chat_ids(messages)

    def token_to_id(self, token: str) -> int | None:
        return self._backend.token_to_id(token)
