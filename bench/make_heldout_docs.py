"""Tokenizes long text files into a held-out set for ``longspec eval-draft``.

    python bench/make_heldout_docs.py --tokenizer MODEL --out DIR FILE [FILE ...]

writes DIR/heldout_long.npz (one int32 array per file, in the order given) and
DIR/data_manifest.json (their names, so eval-draft's --include/--exclude and its per-document
results can name them). MODEL is any target longspec loads (its tokenizer is the one used).
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", required=True, help="a .gguf file or checkpoint directory")
    ap.add_argument("--out", required=True)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    from longspec.tokenizer import Tokenizer

    tok = Tokenizer.from_checkpoint(args.tokenizer)
    os.makedirs(args.out, exist_ok=True)
    arrays, names = {}, []
    for i, path in enumerate(args.files):
        with open(path, encoding="utf-8") as f:
            ids = tok.encode(f.read())
        arrays[f"d{i:03d}"] = np.asarray(ids, dtype=np.int32)
        names.append(path)
        print(f"{path}: {len(ids)} tokens")
    np.savez(os.path.join(args.out, "heldout_long.npz"), **arrays)
    with open(os.path.join(args.out, "data_manifest.json"), "w") as f:
        json.dump({"tokenizer": args.tokenizer, "heldout_long": {"names": names}}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
