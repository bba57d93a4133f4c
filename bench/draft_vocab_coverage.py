#!/usr/bin/env python3
"""How much of a text a draft head over only the most frequent tokens could still propose.

Every draft level reads the full-vocabulary LM head (Llama-3-8B: 1.05 GB a level, most of a draft
round's floor; Qwen2.5-0.5B: 272 MB against a 1 ms plain step). A draft that scores only the N
tokens most frequent in some reference text reads N / vocab of that, and verification keeps the
output exact whatever the draft proposes; what it costs is the positions whose next token lies
outside the N, which the draft can then never guess. This counts them: token frequencies from the
reference files, coverage of the held-out files' tokens by the top N.

    python3 bench/draft_vocab_coverage.py MODEL --reference 'GLOB' --held-out 'GLOB' [--exclude S] [--out FILE.json]

MODEL is a GGUF file or checkpoint directory (its tokenizer is used). Files are read as UTF-8 text,
the first --chars of each, in a fixed shuffled order (--max-files of each glob).
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import random

from longspec.tokenizer import Tokenizer

SIZES = (2048, 4096, 8192, 16384, 32768, 65536)


def token_ids(tok: Tokenizer, pattern: str, max_files: int, chars: int, exclude: str = "") -> tuple[list[int], int]:
    files = sorted(f for f in glob.glob(pattern, recursive=True) if not (exclude and exclude in f))
    random.Random(0).shuffle(files)
    ids, used = [], 0
    for path in files[:max_files]:
        with open(path, encoding="utf-8", errors="ignore") as f:
            text = f.read(chars)
        if len(text) < 200:
            continue
        ids.extend(tok.encode(text))
        used += 1
    return ids, used


def coverage(reference: list[int], held_out: list[int], sizes=SIZES) -> dict[int, float]:
    """Share of held_out's tokens among the n most frequent of reference (ties: lower id first)."""
    counts = collections.Counter(reference)
    ranked = sorted(counts, key=lambda t: (-counts[t], t))
    out = {}
    for n in sizes:
        top = set(ranked[:n])
        out[n] = sum(1 for t in held_out if t in top) / max(1, len(held_out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--reference", required=True, help="glob of the files that rank the tokens")
    ap.add_argument("--held-out", required=True, help="glob of the files whose tokens are counted")
    ap.add_argument("--exclude", default="", help="reference files whose path contains this are skipped "
                    "(keep the held-out files out of the reference)")
    ap.add_argument("--max-files", type=int, default=1500)
    ap.add_argument("--chars", type=int, default=20000)
    ap.add_argument("--out", help="write the numbers as JSON here")
    a = ap.parse_args()
    tok = Tokenizer.from_checkpoint(a.model)
    ref, ref_files = token_ids(tok, a.reference, a.max_files, a.chars, a.exclude)
    held, held_files = token_ids(tok, a.held_out, a.max_files, a.chars)
    cov = coverage(ref, held)
    print(f"reference: {ref_files} files, {len(ref)} tokens, {len(set(ref))} distinct; "
          f"held out: {held_files} files, {len(held)} tokens")
    for n, c in cov.items():
        print(f"top {n:6d}: {c:.4f} of held-out tokens")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"model": a.model, "reference": a.reference, "exclude": a.exclude, "held_out": a.held_out,
                       "reference_tokens": len(ref), "reference_distinct": len(set(ref)),
                       "held_out_tokens": len(held), "coverage": {str(n): c for n, c in cov.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
