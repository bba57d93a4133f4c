"""Text <-> token ids through the checkpoint's own tokenizer.

HF directories use their tokenizer.json (via transformers' AutoTokenizer). GGUF files carry an
embedded tokenizer that transformers converts on load; the conversion takes seconds, so its result
is saved once under the longspec cache, keyed by the file's fingerprint.
"""
from __future__ import annotations

import os
import warnings
from typing import Sequence

from .models import cache_dir, file_fingerprint


def _quiet_transformers():
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers  # noqa: F401  (import after the environment is set)

    transformers.logging.set_verbosity_error()
    return transformers


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


class Tokenizer:
    """A thin wrapper: encode(str) -> ids, decode(ids) -> str, chat templates."""

    def __init__(self, hf_tokenizer):
        self._tok = hf_tokenizer

    @classmethod
    def from_checkpoint(cls, path: str) -> "Tokenizer":
        """The tokenizer of a checkpoint directory or GGUF file.

        Raises FileNotFoundError when a directory has no tokenizer files and ValueError when the
        tokenizer data is corrupt (transformers and tokenizers raise a zoo of types for that,
        bare ``Exception`` included), as README's error table says.
        """
        if os.path.isdir(path) and not any(os.path.isfile(os.path.join(path, f)) for f in _TOKENIZER_FILES):
            raise FileNotFoundError(f"{path}: no tokenizer files ({', '.join(_TOKENIZER_FILES)}); "
                                    "pass tokenizer=False to work with token ids")
        try:
            return cls._load(path)
        except (FileNotFoundError, MemoryError, ImportError):
            raise
        except Exception as exc:  # noqa: BLE001 - every other failure means the data is bad
            raise ValueError(f"{path}: cannot load the tokenizer: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def _load(cls, path: str) -> "Tokenizer":
        transformers = _quiet_transformers()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if os.path.isdir(path):
                return cls(transformers.AutoTokenizer.from_pretrained(path))
            cached = cache_dir() / "tokenizers" / file_fingerprint(path)
            if (cached / "tokenizer.json").is_file():
                return cls(transformers.AutoTokenizer.from_pretrained(str(cached)))
            tok = transformers.AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(path)),
                                                             gguf_file=os.path.basename(path))
            try:
                cached.mkdir(parents=True, exist_ok=True)
                tok.save_pretrained(str(cached))
            except OSError:
                pass  # a read-only cache only costs speed
            return cls(tok)

    @property
    def hf(self):
        return self._tok

    def encode(self, text: str) -> list[int]:
        return list(self._tok(text, add_special_tokens=True)["input_ids"])

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: list[dict]) -> list[int]:
        if getattr(self._tok, "chat_template", None) is None:
            raise ValueError("messages: this checkpoint's tokenizer has no chat template")
        out = self._tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(out, dict) or hasattr(out, "keys"):
            out = out["input_ids"]
        return [int(t) for t in out]

    def token_to_id(self, token: str) -> int | None:
        tid = self._tok.convert_tokens_to_ids(token)
        unk = getattr(self._tok, "unk_token_id", None)
        return None if tid is None or (tid == unk and token != getattr(self._tok, "unk_token", None)) else int(tid)
