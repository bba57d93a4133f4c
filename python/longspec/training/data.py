"""Training data for LongSpec drafts: long offline documents -> token ids -> compact shards.

The documents come from the corpus sources of sources.py (by default the CPython standard library,
the Python docs, man pages and GNU info manuals; code, books, manuals and whole repositories when
named in --sources). Each source is extracted once into a cache with its provenance.

Pipeline (small pure steps, testable without real data): collect_documents -> split_documents ->
tokenize_documents -> pack_sequences / long_documents -> save_token_shards (npz, uint16 when the
vocabulary allows) -> shipped to the GPU machine. CLI:
    python -m longspec.training.data prepare --tokenizer-from MODEL.gguf --out DIR
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .sources import ALL_SOURCES, EXTRA_SOURCES, EXTRACTORS, LICENCES, Document, sha256_file, sha256_hex, unit_hash

LENGTH_BUCKETS = (4096, 8192, 16384, 32768)


def _log(msg: str) -> None:
    print(f"[data] {msg}", file=sys.stderr, flush=True)


# ---------- Cache: one JSONL.gz per source + manifest.json, so extraction (minutes for man) runs once.
def default_cache_dir() -> Path:
    root = os.environ.get("LONGSPEC_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "longspec")
    return Path(root) / "corpus"


def _write_jsonl_gz(path: Path, docs: Sequence[Document]) -> str:
    """Write atomically; gzip mtime=0 so identical content gives identical bytes. Returns the
    sha256 of the uncompressed JSONL (the fingerprint of what was extracted)."""
    payload = "".join(json.dumps({"source": d.source, "name": d.name, "text": d.text}, ensure_ascii=False) + "\n"
                      for d in docs).encode("utf-8")
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(payload)
    os.replace(tmp, path)
    return sha256_hex(payload)


def _read_manifest(cache: Path) -> dict:
    path = cache / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def collect_documents(sources: Sequence[str] = ALL_SOURCES, cache_dir: str | Path | None = None) -> list[Document]:
    """All documents of ``sources``, extracting only what the cache does not hold yet."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    docs: list[Document] = []
    for source in sources:
        if source not in EXTRACTORS:
            raise ValueError(f"unknown source {source!r}; choose from {', '.join(ALL_SOURCES + EXTRA_SOURCES)}")
        path = cache / f"{source}.jsonl.gz"
        if path.is_file() and source in _read_manifest(cache):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                docs.extend(Document(**json.loads(line)) for line in f)
            continue
        t0 = time.time()
        found, prov = EXTRACTORS[source]()
        sha = _write_jsonl_gz(path, found)
        entry = dict(prov, count=len(found), total_chars=sum(len(d.text) for d in found), jsonl_sha256=sha,
                     licence=LICENCES.get(source), extracted_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     extract_seconds=round(time.time() - t0, 1))
        manifest = _read_manifest(cache) | {source: entry}
        (cache / "manifest.json.tmp").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(cache / "manifest.json.tmp", cache / "manifest.json")
        _log(f"{source}: {entry['count']} documents, {entry['total_chars'] / 1e6:.1f} M chars")
        docs.extend(found)
    return docs


# ---------- Split, tokenise, pack.
def is_heldout(doc: Document, heldout_fraction: float = 0.05, seed: int = 0) -> bool:
    """Held-out iff sha256("seed/source/name") maps below the fraction: a property of the document
    alone, so it never changes side when the corpus grows, shrinks or is reordered."""
    return unit_hash(f"{seed}/{doc.source}/{doc.name}") < heldout_fraction


def split_documents(docs: Sequence[Document], heldout_fraction: float = 0.05, seed: int = 0):
    """(train, heldout), each keeping the input order."""
    train, heldout = [], []
    for d in docs:
        (heldout if is_heldout(d, heldout_fraction, seed) else train).append(d)
    return train, heldout


def tokenize_documents(docs: Sequence[Document], tokenizer, batch_size: int = 32) -> list[np.ndarray]:
    """Token ids (uint32) per document, no BOS/EOS added (packing adds separators itself). Batches
    amortise the per-call overhead of fast tokenizers; ids are copied to numpy per batch so the
    Python int lists (~36 bytes per token) never exist for the whole corpus at once.
    ``tokenizer(list_of_texts, add_special_tokens=False)["input_ids"]`` is the only call used."""
    out: list[np.ndarray] = []
    for i in range(0, len(docs), batch_size):
        ids = tokenizer([d.text for d in docs[i:i + batch_size]], add_special_tokens=False)["input_ids"]
        out.extend(np.asarray(x, dtype=np.uint32) for x in ids)
    return out


def pack_sequences(token_docs: Sequence[np.ndarray], seq_len: int, eos_id: int, seed: int = 0) -> np.ndarray:
    """Stage-1 data: documents in a seeded random order, each followed by ``eos_id``, concatenated
    and cut into [n, seq_len] rows; the incomplete tail is dropped."""
    order = np.random.default_rng(seed).permutation(len(token_docs))
    total = sum(len(d) + 1 for d in token_docs)
    stream = np.empty(total, dtype=np.uint32)
    pos = 0
    for i in order:
        d = token_docs[i]
        stream[pos:pos + len(d)] = d
        stream[pos + len(d)] = eos_id
        pos += len(d) + 1
    n = total // seq_len
    return stream[:n * seq_len].reshape(n, seq_len)


def long_documents(token_docs: Sequence[np.ndarray], min_len: int) -> list[np.ndarray]:
    """Documents of at least ``min_len`` tokens (stage-2 training, tau at long contexts)."""
    return [d for d in token_docs if len(d) >= min_len]


# ---------- Shards: npz that loads with plain np.load (train/eval code reads them that way).
def shard_dtype(arrays: Iterable[np.ndarray]):
    """uint16 when every id fits (half the bytes of uint32), else uint32."""
    return np.uint16 if max((int(a.max()) for a in arrays if a.size), default=0) < 65536 else np.uint32


def save_token_shards(path: str | Path, arrays: np.ndarray | Sequence[np.ndarray]) -> int:
    """Compressed npz; a 2-D array is stored as key "packed", a list of documents as keys
    "000000", "000001", ... (one per document, so np.load order == list order by (len, key)).
    Ids are stored as uint16 when they fit (half the bytes). Returns the file size."""
    if isinstance(arrays, np.ndarray) and arrays.ndim == 2:
        members = {"packed": arrays}
    else:
        members = {f"{i:06d}": np.asarray(a).reshape(-1) for i, a in enumerate(arrays)}
    dtype = shard_dtype(members.values())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **{k: a.astype(dtype, copy=False) for k, a in members.items()})
    os.replace(tmp, path)
    return path.stat().st_size


def load_token_shards(path: str | Path, dtype=np.uint32) -> np.ndarray | list[np.ndarray]:
    """Inverse of save_token_shards; ids come back as ``dtype`` (None keeps the stored one)."""
    with np.load(path) as z:
        keys = sorted(z.files, key=lambda k: (len(k), k))
        arrays = [z[k] if dtype is None else z[k].astype(dtype) for k in keys]
    return arrays[0] if keys == ["packed"] else arrays


# ---------- prepare: corpus -> DIR/{train_packed,train_long,heldout_long}.npz + data_manifest.json
def load_tokenizer(spec: str):
    """A transformers tokenizer from a .gguf file (embedded vocabulary; ~10-20 s to convert) or a
    directory with tokenizer.json."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    path = os.path.abspath(spec)
    if os.path.isdir(path):
        return transformers.AutoTokenizer.from_pretrained(path)
    return transformers.AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))


def separator_id(tokenizer) -> int:
    """Document separator: the pre-training ``<|endoftext|>`` when the vocabulary has it (SmolLM2,
    Qwen2.5), since instruct models' eos is the chat turn end; otherwise the eos token."""
    sep = tokenizer.get_vocab().get("<|endoftext|>", tokenizer.eos_token_id)
    if sep is None:
        raise ValueError("tokenizer has neither <|endoftext|> nor an eos token; pass --eos-id")
    return int(sep)


def tokenizer_fingerprint(tokenizer, spec: str) -> dict:
    """Enough to tell whether shards match a model: the file hash and the tokenizer's own JSON."""
    fp = {"from": os.path.abspath(spec), "class": type(tokenizer).__name__, "vocab_size": len(tokenizer),
          "eos_token": tokenizer.eos_token, "eos_token_id": tokenizer.eos_token_id}
    if os.path.isfile(spec):
        fp.update(file_sha256=sha256_file(spec), file_bytes=os.path.getsize(spec))
    if (backend := getattr(tokenizer, "backend_tokenizer", None)) is not None:
        fp["tokenizer_json_sha256"] = sha256_hex(backend.to_str().encode("utf-8"))
    return fp


def _length_stats(docs: Sequence[Document], ids: Sequence[np.ndarray]) -> dict:
    """Per source and in total: documents, characters, tokens and how many reach each long bucket."""
    rows = [(d.source, len(d.text), len(t)) for d, t in zip(docs, ids)]

    def stats(sel):
        return {"docs": len(sel), "chars": sum(r[1] for r in sel), "tokens": sum(r[2] for r in sel),
                **{f"ge_{b}": sum(r[2] >= b for r in sel) for b in LENGTH_BUCKETS}}

    return {"by_source": {s: stats([r for r in rows if r[0] == s]) for s in sorted({r[0] for r in rows})},
            "total": stats(rows)}


def prepare(tokenizer_from: str, out: str | Path, sources: Sequence[str] = ALL_SOURCES, seq_len: int = 1024,
            cache_dir: str | Path | None = None, heldout_fraction: float = 0.05, seed: int = 0,
            train_long_min: int = 8192, heldout_long_min: int = 4096, eos_id: int | None = None) -> dict:
    """Write train_packed.npz (stage 1), train_long.npz (stage 2), heldout_long.npz (tau evaluation)
    and data_manifest.json into ``out``; returns the manifest."""
    out, cache = Path(out), Path(cache_dir) if cache_dir else default_cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    docs = sorted(collect_documents(sources, cache), key=lambda d: (d.source, d.name))
    train, heldout = split_documents(docs, heldout_fraction, seed)
    t0 = time.time()
    tokenizer = load_tokenizer(tokenizer_from)
    sep = separator_id(tokenizer) if eos_id is None else int(eos_id)
    _log(f"tokenizer loaded in {time.time() - t0:.0f} s; tokenising {len(docs)} documents ...")
    t0 = time.time()
    train_ids, heldout_ids = tokenize_documents(train, tokenizer), tokenize_documents(heldout, tokenizer)
    tokenize_s = time.time() - t0
    packed = pack_sequences(train_ids, seq_len, sep, seed)
    longs = {"train_long": (train_long_min, [(f"{d.source}/{d.name}", t) for d, t in zip(train, train_ids)
                                             if len(t) >= train_long_min]),
             "heldout_long": (heldout_long_min, [(f"{d.source}/{d.name}", t) for d, t in zip(heldout, heldout_ids)
                                                 if len(t) >= heldout_long_min])}
    shards = {"train_packed": packed} | {key: [t for _, t in pairs] for key, (_, pairs) in longs.items()}
    files = {f"{key}.npz": {"bytes": save_token_shards(out / f"{key}.npz", arrays),
                            "dtype": np.dtype(shard_dtype([arrays] if key == "train_packed" else arrays)).name}
             for key, arrays in shards.items()}
    manifest = {
        "sources": {s: _read_manifest(cache).get(s) for s in sources},
        "tokenizer": tokenizer_fingerprint(tokenizer, tokenizer_from), "separator_id": sep,
        "split": {"rule": "heldout iff int(sha256(f'{seed}/{source}/{name}')[:8 bytes]) / 2**64 < fraction",
                  "heldout_fraction": heldout_fraction, "seed": seed},
        "pack": {"seq_len": seq_len, "seed": seed, "rows": int(packed.shape[0]),
                 "tokens_dropped": int(sum(len(t) + 1 for t in train_ids) - packed.size)},
        "train": _length_stats(train, train_ids), "heldout": _length_stats(heldout, heldout_ids),
        **{key: {"min_len": lo, "docs": len(pairs), "names": [n for n, _ in pairs],
                 "lengths": [len(t) for _, t in pairs]} for key, (lo, pairs) in longs.items()},
        "files": files,
        "tokenize_seconds": round(tokenize_s, 1),
    }
    (out / "data_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m longspec.training.data", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    prep = sub.add_parser("prepare", help="extract, split, tokenise, pack and write npz shards")
    prep.add_argument("--tokenizer-from", required=True, help=".gguf file or directory with tokenizer.json")
    prep.add_argument("--out", required=True)
    prep.add_argument("--sources", default=",".join(ALL_SOURCES),
                      help=f"comma-separated, of {', '.join(ALL_SOURCES + EXTRA_SOURCES)} (default: the first four)")
    prep.add_argument("--cache-dir", default=None, help="extraction cache (default ~/.cache/longspec/corpus)")
    prep.add_argument("--eos-id", type=int, default=None, help="separator id (default: <|endoftext|> or eos)")
    prep.add_argument("--heldout-fraction", type=float, default=0.05)
    for flag, default in (("--seq-len", 1024), ("--seed", 0), ("--train-long-min", 8192), ("--heldout-long-min", 4096)):
        prep.add_argument(flag, type=int, default=default)
    from . import selfgen  # (it imports this module)

    selfgen.add_parser(sub)
    a = p.parse_args(argv)
    if a.cmd == "selfgen":
        return selfgen.run(a)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one core: other jobs share the machine
    m = prepare(a.tokenizer_from, a.out, [s.strip() for s in a.sources.split(",") if s.strip()], a.seq_len,
                a.cache_dir, a.heldout_fraction, a.seed, a.train_long_min, a.heldout_long_min, a.eos_id)
    print(json.dumps({k: m[k] for k in ("files", "pack")} | {"train": m["train"]["total"],
                                                             "heldout": m["heldout"]["total"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
