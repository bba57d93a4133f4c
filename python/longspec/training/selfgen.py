"""Self-distillation data: the target's own continuations (greedy or sampled) of prompts made from
a prepared corpus's rows (raw, or an instruction over the row's text through the chat template),
added to a copy of it as stage-1 rows. At decode time the draft reads a human-written
context followed by the target's outputs; a corpus of human text alone never shows it the second
kind. Issue 12 lists "the targets' own generations" among the recipe changes to try; this writes
the data for that ablation (the rest of the corpus, stage 2 and the held-out set, is copied as is).

    python -m longspec.training.data selfgen --data /tmp/data/C --out /tmp/data/G \
        --target /tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf --rows 4096 --new-tokens 256 --mix 0.3
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data import load_token_shards, save_token_shards


def _log(msg: str) -> None:
    print(f"[selfgen] {msg}", file=sys.stderr, flush=True)


def generate_rows(model, prompts: Sequence[np.ndarray], row_len: int, batch_size: int, device: str,
                  temperature: float = 0.0, seed: int = 0, time_limit: float | None = None) -> np.ndarray:
    """Each prompt (ids, at most ``row_len`` - 1 of them) continued by the target to a row of
    ``row_len`` tokens, as [m, row_len] (m <= len(prompts): generation stops starting batches once
    ``time_limit`` seconds have passed). Greedy at temperature 0, else sampled from softmax(logits /
    temperature) over the whole vocabulary (seeded per batch). The end-of-text token is held back
    until the row is full. A batch's prompts of different lengths are padded on the left (masked)."""
    import torch

    eos = getattr(model.generation_config, "eos_token_id", None)
    pad = eos[0] if isinstance(eos, list) else eos
    pad = 0 if pad is None else int(pad)
    if temperature > 0.0:
        sampling = {"do_sample": True, "temperature": float(temperature), "top_p": 1.0, "top_k": 0}
    else:
        sampling = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    out = []
    t0 = time.time()
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            if time_limit is not None and out and time.time() - t0 > time_limit:
                _log(f"time limit: {start} of {len(prompts)} rows generated")
                break
            batch = [np.asarray(p, dtype=np.int64) for p in prompts[start:start + batch_size]]
            longest, shortest = max(len(b) for b in batch), min(len(b) for b in batch)
            if shortest < 1 or longest >= row_len:
                raise ValueError(f"prompts must hold 1..{row_len - 1} tokens, got {shortest}..{longest}")
            ids = np.full((len(batch), longest), pad, dtype=np.int64)
            mask = np.zeros((len(batch), longest), dtype=np.int64)
            for i, b in enumerate(batch):
                ids[i, longest - len(b):] = b
                mask[i, longest - len(b):] = 1
            new = row_len - shortest  # the shortest prompt's row fills up; longer ones are cut
            torch.manual_seed(seed + start)
            gen = model.generate(input_ids=torch.as_tensor(ids, device=device),
                                 attention_mask=torch.as_tensor(mask, device=device), max_new_tokens=new,
                                 min_new_tokens=new, pad_token_id=pad, **sampling)
            if gen.shape[1] != longest + new:
                raise RuntimeError(f"generate returned rows of {gen.shape[1]} tokens, expected {longest + new}")
            gen = gen[:, longest:].cpu().numpy()
            out.extend(np.concatenate([b, g])[:row_len].astype(np.uint32) for b, g in zip(batch, gen))
            _log(f"{start + len(batch)} rows in {time.time() - t0:.0f} s")
    return np.stack(out) if out else np.zeros((0, row_len), np.uint32)


# Instructions of the instruction-shaped prompts (one drawn per row): the evaluation's two
# (longspec eval-draft --task instruction) and others of the same kind.
TRAIN_INSTRUCTIONS = ("Summarise this document.", "Explain what this code does, part by part.",
                      "What are the main points of this text?", "Explain this document to a newcomer.",
                      "Describe what this text is about, section by section.")


def instruction_prompts(tokenizer, rows: np.ndarray, prompt_len: int, seed: int) -> list[np.ndarray]:
    """LongBench's instruction shape over corpus rows: each row's text and an instruction (drawn
    per row) in one user turn of the chat template, the text cut so the prompt holds at most
    ``prompt_len`` tokens (eval-draft's instruction_prompt)."""
    from .cli import instruction_prompt

    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(TRAIN_INSTRUCTIONS), size=rows.shape[0])
    return [np.asarray(instruction_prompt(tokenizer, r, prompt_len, TRAIN_INSTRUCTIONS[k]), dtype=np.int64)
            for r, k in zip(rows, picks)]


def _check_mix(mix: float) -> None:
    if not 0.0 < mix < 1.0:
        raise ValueError(f"mix must be in (0, 1), got {mix}")


def mix_rows(human: np.ndarray, generated: np.ndarray, mix: float, seed: int) -> tuple[np.ndarray, int]:
    """Every human row plus the generated rows repeated so that they are about ``mix`` of the
    result (stage 1 samples rows uniformly), in a seeded random order. Returns (rows, copies)."""
    _check_mix(mix)
    if generated.shape[0] == 0:
        raise ValueError("no generated rows to mix in")
    if generated.shape[1] != human.shape[1]:
        raise ValueError(f"generated rows have {generated.shape[1]} tokens, the corpus rows {human.shape[1]}")
    copies = max(1, round(mix / (1.0 - mix) * human.shape[0] / generated.shape[0]))
    rows = np.concatenate([human.astype(np.uint32)] + [generated] * copies)
    return rows[np.random.default_rng(seed).permutation(rows.shape[0])], copies


def selfgen(data: str | Path, out: str | Path, target: str, rows: int = 4096, new_tokens: int = 256,
            mix: float = 0.3, batch_size: int = 256, seed: int = 0, device: str = "cuda",
            time_limit: float | None = None, shape: str = "continuation", temperature: float = 0.0,
            model=None, tokenizer=None) -> dict:
    """Writes ``out``: train_packed.npz (``data``'s rows and the target's continuations of
    prompts made from ``rows`` of them), train_long.npz and heldout_long.npz copied, and
    data_manifest.json (``data``'s, with a "selfgen" section). Returns that section.

    shape "continuation": a row's first seq_len - new_tokens tokens, raw; "instruction": the row's
    text and an instruction through the chat template (at most seq_len - new_tokens tokens; the
    answer fills the row). ``temperature`` 0: greedy, else sampled."""
    data, out = Path(data), Path(out)
    if data.resolve() == out.resolve():
        raise ValueError("--out must differ from --data (the corpus is copied, not changed)")
    human = load_token_shards(data / "train_packed.npz")
    seq_len = human.shape[1]
    prompt_len = seq_len - new_tokens
    if not 0 < prompt_len < seq_len:
        raise ValueError(f"--new-tokens must be in 1..{seq_len - 1} for rows of {seq_len} tokens")
    if not 0 < rows <= human.shape[0]:
        raise ValueError(f"--rows must be in 1..{human.shape[0]}")
    if shape not in ("continuation", "instruction"):
        raise ValueError(f"--shape must be continuation or instruction, got {shape!r}")
    if not temperature >= 0.0:
        raise ValueError(f"--temperature must be >= 0, got {temperature}")
    _check_mix(mix)  # before the generation, not after it
    rng = np.random.default_rng(seed)
    picked = human[rng.choice(human.shape[0], rows, replace=False)]
    if shape == "continuation":
        prompts = list(picked[:, :prompt_len])
    else:
        if tokenizer is None:
            from ..tokenizer import Tokenizer
            tokenizer = Tokenizer.from_checkpoint(target)
        prompts = instruction_prompts(tokenizer, picked, prompt_len, seed)
    if model is None:
        import torch

        from .target import load_target
        model = load_target(target, device, torch.bfloat16 if device.startswith("cuda") else torch.float32)
    t0 = time.time()
    generated = generate_rows(model, prompts, seq_len, batch_size, device, temperature, seed, time_limit)
    seconds = time.time() - t0
    new_total = sum(seq_len - len(p) for p in prompts[:generated.shape[0]])  # instruction prompts vary
    mixed, copies = mix_rows(human, generated, mix, seed)
    out.mkdir(parents=True, exist_ok=True)
    save_token_shards(out / "train_packed.npz", mixed)
    for name in ("train_long.npz", "heldout_long.npz"):
        if (data / name).exists():
            shutil.copyfile(data / name, out / name)
    section = {"from": str(data), "target": str(target), "shape": shape, "prompt_tokens": prompt_len,
               "new_tokens": new_tokens,
               "generated_rows": int(generated.shape[0]), "copies": copies, "human_rows": int(human.shape[0]),
               "generated_fraction": round(copies * generated.shape[0] / mixed.shape[0], 4),
               "decoding": (f"sampled at temperature {temperature}" if temperature > 0 else "greedy")
               + " (end-of-text held back until the row is full)", "seed": seed,
               "seconds": round(seconds, 1), "tokens_per_second": round(new_total / max(seconds, 1e-9))}
    manifest = json.loads((data / "data_manifest.json").read_text()) if (data / "data_manifest.json").exists() else {}
    manifest["selfgen"] = section
    manifest.setdefault("pack", {})["rows"] = int(mixed.shape[0])
    (out / "data_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return section


def add_parser(sub) -> None:
    p = sub.add_parser("selfgen", help="add the target's own continuations to a prepared corpus's stage-1 rows")
    p.add_argument("--data", required=True, help="a prepared corpus (train_packed.npz, ...)")
    p.add_argument("--out", required=True, help="the new corpus directory")
    p.add_argument("--target", required=True, help="the target: .gguf file or HF directory")
    p.add_argument("--rows", type=int, default=4096, help="prompts (corpus rows) to continue")
    p.add_argument("--new-tokens", type=int, default=256, help="tokens generated per row (the prompt is the rest)")
    p.add_argument("--mix", type=float, default=0.3, help="fraction of stage-1 rows that are generated ones")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda")
    p.add_argument("--time-limit", type=float, default=None, help="seconds after which no new batch starts")
    p.add_argument("--shape", default="continuation", choices=("continuation", "instruction"),
                   help="continuation: a row's first tokens, raw; instruction: the row's text and an "
                        "instruction through the chat template")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy, else sampled")


def run(a) -> int:
    section = selfgen(a.data, a.out, a.target, a.rows, a.new_tokens, a.mix, a.batch_size, a.seed, a.device,
                      a.time_limit, a.shape, a.temperature)
    print(json.dumps(section, indent=2))
    return 0 if section["generated_rows"] > 0 else 1
