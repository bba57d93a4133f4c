"""longspec: lossless speculative decoding for long-context LLM inference.

    from longspec import Engine
    eng = Engine("smollm2")                      # or an HF directory / .gguf file
    out = eng.generate("Once upon a time", max_new_tokens=64)
    print(out.text, out.stats.tokens_per_s)     # a Stats (also a dict: out.stats["tokens_per_s"])
"""
import os as _os

# libgomp's default busy-waiting collapses throughput as soon as anything else shares the cores
# (measured: a decode step 10x slower next to another process); passive waiting costs ~5% on an
# idle machine. Must be set before the extension loads libgomp; the user's setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._C import SamplingParams, cuda_available, version  # noqa: E402
from .engine import Engine, GenerationOutput  # noqa: E402
from .stats import Stats  # noqa: E402
from .drafts import random_draft, restrict_draft_head  # noqa: E402
from .models import DEFAULT_TARGET, smollm2_path  # noqa: E402

__version__ = version()

__all__ = ["Engine", "GenerationOutput", "Stats", "SamplingParams", "random_draft", "restrict_draft_head", "DEFAULT_TARGET", "smollm2_path", "cuda_available", "version",
           "__version__"]
