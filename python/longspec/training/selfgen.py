"""Self-distillation data: the target's own greedy continuations of prompts cut from a prepared
corpus, added to a copy of it as stage-1 rows. At decode time the draft reads a human-written
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
from pathlib import Path

import numpy as np

from .data import load_token_shards, save_token_shards


def _log(msg: str) -> None:
    print(f"[selfgen] {msg}", file=sys.stderr, flush=True)


def generate_continuations(model, prompts: np.ndarray, new_tokens: int, batch_size: int, device: str,
                           time_limit: float | None = None) -> np.ndarray:
    """Greedy continuations of ``new_tokens`` tokens after each prompt row ([n, P] ids), as
    [m, P + new_tokens] rows (m <= n: generation stops starting batches once ``time_limit``
    seconds have passed). The end-of-text token is held back until the last token, so that every
    row is full; the continuation is otherwise the target's argmax path."""
    import torch

    gen_kwargs = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False,
                  "temperature": None, "top_p": None, "top_k": None}
    eos = getattr(model.generation_config, "eos_token_id", None)
    pad = eos[0] if isinstance(eos, list) else eos
    out = []
    t0 = time.time()
    with torch.no_grad():
        for start in range(0, prompts.shape[0], batch_size):
            if time_limit is not None and out and time.time() - t0 > time_limit:
                _log(f"time limit: {start} of {prompts.shape[0]} rows generated")
                break
            ids = torch.as_tensor(prompts[start:start + batch_size].astype(np.int64), device=device)
            rows = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                  pad_token_id=0 if pad is None else pad, **gen_kwargs)
            if rows.shape[1] != prompts.shape[1] + new_tokens:
                raise RuntimeError(f"generate returned rows of {rows.shape[1]} tokens, expected "
                                   f"{prompts.shape[1] + new_tokens}")
            out.append(rows.cpu().numpy().astype(np.uint32))
            _log(f"{start + ids.shape[0]} rows in {time.time() - t0:.0f} s")
    return np.concatenate(out) if out else np.zeros((0, prompts.shape[1] + new_tokens), np.uint32)


def mix_rows(human: np.ndarray, generated: np.ndarray, mix: float, seed: int) -> tuple[np.ndarray, int]:
    """Every human row plus the generated rows repeated so that they are about ``mix`` of the
    result (stage 1 samples rows uniformly), in a seeded random order. Returns (rows, copies)."""
    if not 0.0 < mix < 1.0:
        raise ValueError(f"mix must be in (0, 1), got {mix}")
    if generated.shape[0] == 0:
        raise ValueError("no generated rows to mix in")
    if generated.shape[1] != human.shape[1]:
        raise ValueError(f"generated rows have {generated.shape[1]} tokens, the corpus rows {human.shape[1]}")
    copies = max(1, round(mix / (1.0 - mix) * human.shape[0] / generated.shape[0]))
    rows = np.concatenate([human.astype(np.uint32)] + [generated] * copies)
    return rows[np.random.default_rng(seed).permutation(rows.shape[0])], copies


def selfgen(data: str | Path, out: str | Path, target: str, rows: int = 4096, new_tokens: int = 256,
            mix: float = 0.3, batch_size: int = 256, seed: int = 0, device: str = "cuda",
            time_limit: float | None = None, model=None) -> dict:
    """Writes ``out``: train_packed.npz (``data``'s rows and the target's continuations of
    ``rows`` of them, cut at seq_len - new_tokens), train_long.npz and heldout_long.npz copied,
    and data_manifest.json (``data``'s, with a "selfgen" section). Returns that section."""
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
    rng = np.random.default_rng(seed)
    prompts = human[rng.choice(human.shape[0], rows, replace=False), :prompt_len]
    if model is None:
        import torch

        from .target import load_target
        model = load_target(target, device, torch.bfloat16 if device.startswith("cuda") else torch.float32)
    t0 = time.time()
    generated = generate_continuations(model, prompts, new_tokens, batch_size, device, time_limit)
    seconds = time.time() - t0
    mixed, copies = mix_rows(human, generated, mix, seed)
    out.mkdir(parents=True, exist_ok=True)
    save_token_shards(out / "train_packed.npz", mixed)
    for name in ("train_long.npz", "heldout_long.npz"):
        if (data / name).exists():
            shutil.copyfile(data / name, out / name)
    section = {"from": str(data), "target": str(target), "prompt_tokens": prompt_len, "new_tokens": new_tokens,
               "generated_rows": int(generated.shape[0]), "copies": copies, "human_rows": int(human.shape[0]),
               "generated_fraction": round(copies * generated.shape[0] / mixed.shape[0], 4),
               "decoding": "greedy (end-of-text held back to the last token)", "seed": seed,
               "seconds": round(seconds, 1), "tokens_per_second": round(generated.shape[0] * new_tokens / max(seconds, 1e-9))}
    manifest = json.loads((data / "data_manifest.json").read_text()) if (data / "data_manifest.json").exists() else {}
    manifest["selfgen"] = section
    manifest.setdefault("pack", {})["rows"] = int(mixed.shape[0])
    (out / "data_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return section


def add_parser(sub) -> None:
    p = sub.add_parser("selfgen", help="add the target's greedy continuations to a prepared corpus's stage-1 rows")
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


def run(a) -> int:
    section = selfgen(a.data, a.out, a.target, a.rows, a.new_tokens, a.mix, a.batch_size, a.seed, a.device,
                      a.time_limit)
    print(json.dumps(section, indent=2))
    return 0 if section["generated_rows"] > 0 else 1
