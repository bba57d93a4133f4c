"""longspec: lossless speculative decoding for long-context LLM inference.

    from longspec import Engine
    eng = Engine("smollm2")                      # or an HF directory / .gguf file
    out = eng.generate("Once upon a time", max_new_tokens=64)
    print(out.text, out.stats["tokens_per_s"])
"""
from ._C import cuda_available, version
from .engine import Engine, GenerationOutput
from .drafts import random_draft
from .models import DEFAULT_TARGET, smollm2_path

__version__ = version()

__all__ = ["Engine", "GenerationOutput", "random_draft", "DEFAULT_TARGET", "smollm2_path", "cuda_available", "version",
           "__version__"]
