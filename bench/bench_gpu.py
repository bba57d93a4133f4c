#!/usr/bin/env python3
"""GPU decode benchmark: longspec plain and speculative decoding against Hugging Face transformers
and the memory-bandwidth floor, side by side in one run on one card, batch 1, bf16, greedy.

    python bench/bench_gpu.py --out-dir bench/results [--models a,b,...] [--hf generate,compile]
        [--smollm2 PATH.gguf] [--qwen05 PATH.gguf] [--qwen15 PATH.gguf] [--contexts NAME=C1,C2,...]
        [--new-tokens 128]

Models, drafts and default contexts (--contexts NAME=C1,C2,... replaces one model's list; repeat it
for several models):
  smollm2-135m        real GGUF, trained draft models/smollm2-135m-instruct-longspec   2048,4096,8192
  qwen2.5-coder-0.5b  real GGUF, trained draft models/qwen2.5-coder-0.5b-instruct-longspec
                                                                                     8192,16384,32768
  qwen2.5-coder-1.5b  real GGUF (--qwen15), draft models/qwen2.5-coder-1.5b-instruct-longspec
                      when it exists (else plain rows, and --draft-variant rows: e.g. the 0.5B
                      GGUF as a classic two-model draft)                              16384,32768
  qwen2.5-1.5b-shape  random bf16 weights in that shape, no draft                    32768
  llama3-8b-shape     random bf16 weights, random (untrained) draft for timing only  32768
Cost per step does not depend on weight values, so the shape models time real architectures.
"context" is the KV length at which the decode steps run: a real model's prompt is
context - new_tokens - 1 tokens, a shape model's prompt is context tokens.

Rows (schema of shared/tools/bench_schema.py). Decode rows: ms_per_token = decode seconds /
(new tokens - 1), the first token coming from the prefill; the second of two identical runs (the
first captures the step graphs of its context buckets); prefill_s beside it.
  floor             (bf16 weight bytes read per step + K/V bytes at that context) / 4.42 TB/s
                    (H200 read bandwidth measured 2026-11-29)
  plain             longspec without speculation, --new-tokens (default 128), ignore_eos
  speculative       longspec with the trained draft and the explicit tree --tree (default
                    4,16,16,16,16: 69 rows), same prompt and length; tau = tokens per round;
                    identical_to_plain = its tokens (both runs) equal the plain run's, as greedy
                    speculation must give; speedup_vs_plain
                    With "tree": "auto" the engine's policy picks each round's shape or a plain
                    step ("plain_rounds" counts those), when the engine accepts it (else a note;
                    --no-auto skips it); the tables and the plot call these rows speculative_auto.
                    --extra-trees "T1;T2" adds a speculative row per tree, marked tree_sweep: true
                    (speculative_sweep in the tables: one table of all explicit trees by size);
                    "T@N" grows tree T and verifies its best N nodes ("verify_nodes": N).
  verify_step,      ms per round of the target's tree verification / the draft's tree building
  draft_round       (1e3 * verify_s or draft_s / rounds) of one speculative run with
                    LONGSPEC_PHASE_TIMING=1, which makes the engine synchronise the device after
                    each phase (without it the phase clocks only see host enqueue time, and an
                    engine that predates the variable ignores it). For --phase-models (default
                    llama3-8b-shape) at their largest context, trees --tree and --small-tree. The
                    llama3-8b-shape draft is random: tau means nothing there and is left null.
                    --draft-variant MODEL:LABEL=DRAFT (repeatable) adds speculative rows (--tree,
                    --extra-trees and auto) of another draft for a real model (a LongSpec draft directory, e.g.
                    the packaged draft with a subset head, head_tokens.json; or a smaller model of
                    the same tokenizer, a classic two-model draft), on its own engine after the
                    packaged draft's rows: draft_variant LABEL, draft_head its head's size.
                    --draft-head K gives the shape models' random drafts a head over K tokens
                    (`longspec draft-head`); their rows then carry draft_head: K, and the floor
                    counts that head instead of the target's.
                    Every other row comes from runs without the variable.
  hf_generate,      transformers generate (dynamic cache / static cache + torch.compile) on the
  hf_compile        same file and prompt, --hf-new-tokens (default 16) tokens, after every longspec
                    row (a slow compile cannot cost them); decode = (N-token time - 1-token time)/(N-1)

Prompts (rows carry "prompt", the notes its full label; no network needed: torch installs the texts):
  smollm2-135m        torch's API docstrings (reST documentation: torch, torch.nn.functional,
                      linalg, special, fft, Tensor methods, in name order)
  qwen2.5-coder-0.5b  torch/nn/modules Python sources in path order, "# path" before each file
Both drafts were trained on CPython's standard library, the Python docs, man and info pages
(bench/data/README.md): torch's docs and code are held out from that, in the same styles. Without
torch the prompt falls back to CPython stdlib sources, labelled in-domain. Shape models get fixed
pseudo-random ids.

Writes gpu_decode_<date>.json and .md (decode table, speculative table, phase table) after every
row, and gpu_speculative_<date>.png (tokens/s against context: plain, speculative, HF) after each
model, to --out-dir: a run cut short keeps what it measured. --device cpu runs the same code on
the CPU (a smoke test at small contexts).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import inspect
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_report import PHASE_ENV, Results, plot  # noqa: E402  (the script's own folder)

READ_BW = 4.42e12
PEAK_FLOPS = 790e12  # bf16 matmul measured on the H200 (the FLOPs side of a verification's floor)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {
    "smollm2-135m": dict(source="smollm2", contexts=(2048, 4096, 8192), prompt="torch-docs",
                         draft=os.path.join(REPO, "models", "smollm2-135m-instruct-longspec")),
    "qwen2.5-coder-0.5b": dict(source="qwen05", contexts=(8192, 16384, 32768), prompt="torch-code",
                               draft=os.path.join(REPO, "models", "qwen2.5-coder-0.5b-instruct-longspec")),
    "qwen2.5-coder-1.5b": dict(source="qwen15", contexts=(16384, 32768), prompt="torch-code",
                               draft=os.path.join(REPO, "models", "qwen2.5-coder-1.5b-instruct-longspec")),
    "qwen2.5-1.5b-shape": dict(source="shape", contexts=(32768,)),
    "llama3-8b-shape": dict(source="shape", contexts=(32768,), draft="random"),
}
UNTRAINED = "random (untrained) draft: timing only, tau meaningless"


def linear_params(info: dict) -> int:
    """Weights of every Linear of the target: qkv, o and the MLP of each layer, and the LM head."""
    h, i, l, v = info["hidden_size"], info["intermediate_size"], info["num_layers"], info["vocab_size"]
    q, kv = info["num_heads"] * info["head_dim"], info["num_kv_heads"] * info["head_dim"]
    return l * ((q + 2 * kv) * h + h * q + 3 * i * h) + v * h


def layer_kv_bytes(info: dict, context: int) -> int:
    """One layer's K and V (bf16) at `context` positions."""
    return 2 * info["num_kv_heads"] * info["head_dim"] * 2 * context


def floor_ms(info: dict, context: int) -> float:
    """Bytes a decode step must read: every Linear weight once (bf16) and the K/V of `context`."""
    return (2 * linear_params(info) + info["num_layers"] * layer_kv_bytes(info, context)) / READ_BW * 1e3


def verify_floor_ms(info: dict, context: int, rows: int) -> float:
    """A verification of `rows` tree rows: every weight read once or, where more, the Linears'
    FLOPs at PEAK_FLOPS; each layer's attention at least max(its K/V bytes, its FLOPs)."""
    params, q = linear_params(info), info["num_heads"] * info["head_dim"]
    linear = max(2 * params / READ_BW, 2 * rows * params / PEAK_FLOPS)
    attention = info["num_layers"] * max(layer_kv_bytes(info, context) / READ_BW, 4 * rows * q * context / PEAK_FLOPS)
    return (linear + attention) * 1e3


def draft_round_floor_ms(info: dict, draft_bytes: int, context: int, levels: int, own_head: bool = False) -> float:
    """A draft round of `levels` levels: each reads the draft's own weights, the target's LM head
    (bf16) and the target's last-layer K/V (the draft's cross-attention). With own_head (a head
    over a subset of the vocabulary, head_tokens.json) the head is among the draft's own bytes."""
    head = 0 if own_head else 2 * info["vocab_size"] * info["hidden_size"]
    per_level = draft_bytes + head + layer_kv_bytes(info, context)
    return levels * per_level / READ_BW * 1e3


def draft_head_size(draft_dir: str | None) -> int | None:
    """The number of tokens a draft's subset head covers (head_tokens.json), or None: the whole head."""
    path = os.path.join(draft_dir, "head_tokens.json") if draft_dir else None
    if path is None or not os.path.isfile(path):
        return None
    with open(path) as f:
        return len(json.load(f)["tokens"])


# ---------------------------------------------------------------------------------------------
# Prompts

def stdlib_text() -> tuple[str, str]:
    import sysconfig

    lib = sysconfig.get_paths()["stdlib"]
    parts = []
    for name in sorted(os.listdir(lib)):
        if name.endswith(".py"):
            with open(os.path.join(lib, name), encoding="utf-8", errors="replace") as f:
                parts.append(f.read())
    return "".join(parts), "CPython stdlib .py sources (in-domain: the draft was trained on them)"


def torch_docs_text() -> tuple[str, str]:
    """The docstrings of torch's public functions, each once, namespace by namespace in name order."""
    import warnings

    import torch
    import torch.nn.functional

    seen, parts = set(), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ns in (torch, torch.nn.functional, torch.linalg, torch.special, torch.fft, torch.Tensor):
            for name in sorted(dir(ns)):
                if not name[:1].islower():
                    continue
                try:
                    obj = getattr(ns, name)
                except Exception:  # noqa: BLE001 - a lazy attribute that cannot load here: not text we need
                    continue
                if inspect.isclass(obj) or inspect.ismodule(obj) or not callable(obj):
                    continue
                doc = getattr(obj, "__doc__", None)
                if isinstance(doc, str) and len(doc) >= 400 and doc not in seen:
                    seen.add(doc)
                    parts.append(inspect.cleandoc(doc))
    return "\n\n".join(parts), f"torch {torch.__version__} API docstrings (held out from the draft's training data)"


def torch_code_text() -> tuple[str, str]:
    """torch/nn/modules/*.py (files of 2 KB or more) in path order, each after a '# path' line."""
    import torch

    root = os.path.dirname(torch.__file__)
    parts = []
    for base, dirs, files in os.walk(os.path.join(root, "nn", "modules")):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(base, name)
            if name.endswith(".py") and os.path.getsize(path) >= 2048:
                with open(path, encoding="utf-8", errors="replace") as f:
                    parts.append(f"# {os.path.relpath(path, os.path.dirname(root))}\n{f.read()}")
    label = f"torch {torch.__version__} torch/nn/modules sources (held out from the draft's training data)"
    return "\n".join(parts), label


TEXTS = {"stdlib": stdlib_text, "torch-docs": torch_docs_text, "torch-code": torch_code_text}


def text_prompt(kind: str, tokenizer, n: int) -> tuple[list[int], str, str]:
    """The first n tokens of text `kind` (falling back to the stdlib text), the text used and its label."""
    failures = []
    for source in dict.fromkeys((kind, "stdlib")):
        try:
            text, label = TEXTS[source]()
        except Exception as e:  # noqa: BLE001 - no torch here: the fallback says so in its label
            failures.append(f"{source}: {type(e).__name__}: {e}")
            continue
        for chars in (6 * n, len(text)):  # tokenising only what is needed keeps this fast
            ids = tokenizer.encode(text[:chars])
            if len(ids) >= n:
                return ids[:n], source, label + (f"; {'; '.join(failures)}" if failures else "")
        failures.append(f"{source}: only {len(ids)} tokens")
    raise RuntimeError(f"not enough text for a {n}-token prompt ({'; '.join(failures)})")


def prompt_ids(n: int, vocab: int, tokenizer=None) -> list[int]:
    """n tokens: CPython sources through the tokenizer when there is one, else fixed random ids."""
    if tokenizer is not None:
        return text_prompt("stdlib", tokenizer, n)[0]
    import random

    rng = random.Random(0)
    return [rng.randrange(10, vocab - 1) for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# longspec

def step_ms(stats) -> float:
    """Milliseconds per emitted token after the first (which the prefill produces)."""
    return 1e3 * stats["decode_s"] / max(stats["new_tokens"] - 1, 1)


def time_longspec(path: str, context: int, new_tokens: int, tokenizer_ids) -> tuple[dict, dict]:
    """Plain decoding on a fresh engine without a draft (used by bench/gpu/extra_contexts.py)."""
    from longspec import Engine

    eng = Engine(path, draft=None, device="cuda", tokenizer=False, max_context=context + new_tokens + 64)
    info = eng.target_info
    ids = tokenizer_ids if tokenizer_ids is not None else prompt_ids(context, info["vocab_size"])
    runs = []
    for _ in range(2):  # the first run captures the step graphs of its context buckets
        out = eng.generate(ids, max_new_tokens=new_tokens, ignore_eos=True, speculative=False)
        runs.append(out.stats)
    del eng
    gc.collect()
    return info, {"ms_per_token": step_ms(runs[-1]), "prefill_s": runs[-1]["prefill_s"],
                  "warm_up_ms_per_token": step_ms(runs[0])}


def run_twice(eng, ids, n: int, **kw):
    """Two identical generations: the first warms up (graph capture), the second is measured."""
    return [eng.generate(ids, max_new_tokens=n, ignore_eos=True, **kw) for _ in range(2)]


@contextlib.contextmanager
def phase_timing():
    """LONGSPEC_PHASE_TIMING=1 for the calls inside (the engine reads it at generation time)."""
    old = os.environ.get(PHASE_ENV)
    os.environ[PHASE_ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(PHASE_ENV, None)
        else:
            os.environ[PHASE_ENV] = old


def decode_row(base: dict, outs, method: str) -> dict:
    warm, out = outs
    st = out.stats
    return {**base, "method": method, "ms_per_token": round(step_ms(st), 4), "prefill_s": round(st["prefill_s"], 3),
            "new_tokens": len(out.tokens), "warm_up_ms_per_token": round(step_ms(warm.stats), 4)}


def speculative_row(eng, ids, n: int, base: dict, tree, plain: dict | None, verify_nodes: int | None = None) -> dict:
    """A speculative row (an explicit tree, or tree="auto"; verify_nodes: only the grown tree's
    best N nodes verified), checked against plain."""
    auto = tree == "auto"
    pruned = {"verify_nodes": verify_nodes} if verify_nodes else {}
    outs = run_twice(eng, ids, n, tree=tree) if auto else run_twice(eng, ids, n, speculative=True, tree=tree, **pruned)
    st = outs[1].stats
    if not auto and not st["speculative"]:
        raise RuntimeError(f"tree={tree} decoded plainly")
    row = decode_row(base, outs, "speculative")
    row.update(tau=round(st["mean_accepted"], 3) if st["speculative"] else None, tree=tree, rounds=st["rounds"],
               accepted_histogram=list(st["accepted_histogram"]))
    if verify_nodes:
        row["verify_nodes"] = verify_nodes
    if auto:
        row["plain_rounds"] = st.get("plain_rounds")
    if plain is not None:
        want = plain["tokens"]
        row["identical_to_plain"] = all(list(o.tokens) == want for o in outs)
        if not row["identical_to_plain"]:
            got = list(outs[1].tokens)
            row["first_difference"] = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                                           min(len(got), len(want)))
        row["speedup_vs_plain"] = round(plain["row"]["ms_per_token"] / row["ms_per_token"], 3)
    return row


def phase_rows(eng, ids, n: int, base: dict, tree: list[int], trained: bool) -> list[dict]:
    """draft_round and verify_step rows (ms per round) from a run with device-synchronised phases."""
    with phase_timing():
        _, out = run_twice(eng, ids, n, speculative=True, tree=tree)
    st = out.stats
    rounds = st["rounds"]
    if not st["speculative"] or rounds <= 0:
        raise RuntimeError(f"tree={tree}: no speculation rounds")
    common = {"tree": tree, "tree_rows": 1 + sum(tree), "rounds": rounds,
              "tau": round(st["mean_accepted"], 3) if trained else None,
              "draft": "trained" if trained else UNTRAINED, "phase_timing": f"{PHASE_ENV}=1",
              "draft_head": draft_head_size(getattr(eng, "draft_path", None)),
              "decode_ms_per_round": round(1e3 * st["decode_s"] / rounds, 4),
              "other_ms_per_round": round(1e3 * st["other_s"] / rounds, 4)}
    draft = {**base, "method": "draft_round", "ms_per_token": round(1e3 * st["draft_s"] / rounds, 4), **common}
    verify = {**base, "method": "verify_step", "ms_per_token": round(1e3 * st["verify_s"] / rounds, 4), **common}
    info, dinfo = getattr(eng, "target_info", None), getattr(eng, "draft_info", None)
    if info:
        verify["floor_ms"] = round(verify_floor_ms(info, base["context"], common["tree_rows"]), 4)
        if dinfo:
            draft["floor_ms"] = round(draft_round_floor_ms(info, int(dinfo["parameter_bytes"]), base["context"],
                                                           len(tree), common["draft_head"] is not None), 4)
    return [draft, verify]


def resolve_target(name: str, spec: dict, args, contexts) -> tuple[str | None, str | None, bool]:
    """(target path, draft dir, draft trained) of one model; target None when its file is missing."""
    if spec["source"] == "shape":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from make_random_checkpoint import write

        t = time.time()
        path = write(name, os.path.join(args.work, name), max_position=max(contexts) + 4096)
        print(f"[{name}] random checkpoint ready in {time.time() - t:.0f} s", flush=True)
    else:
        path = getattr(args, spec["source"])
        if spec["source"] == "smollm2" and path is None:
            from longspec.models import smollm2_path

            path = smollm2_path(download=False)
        if path is None or not os.path.exists(path):
            return None, None, False
    draft = spec.get("draft")
    if draft == "random":
        from longspec import random_draft

        draft = os.path.join(args.work, f"{name}-random-draft")
        if not all(os.path.isfile(os.path.join(draft, f)) for f in ("config.json", "model.safetensors")):
            t = time.time()
            random_draft(path, draft, seed=0)
            print(f"[{name}] random draft written in {time.time() - t:.0f} s", flush=True)
        if args.draft_head:
            # Timing only: which ids the head keeps does not change its cost.
            from longspec import restrict_draft_head

            headed = f"{draft}-head{args.draft_head}"
            if not os.path.isdir(headed):
                restrict_draft_head(draft, headed, range(args.draft_head))
            draft = headed
        return path, draft, False
    if draft is not None:
        draft = getattr(args, spec["source"] + "_draft") or draft
    return path, draft, draft is not None


def bench_model(name: str, spec: dict, contexts: list[int], args, res) -> tuple[str, list] | None:
    """Every longspec row of one model on one engine; returns (path, [(context, prompt ids)]) for HF."""
    from longspec import Engine

    n = args.new_tokens
    path, draft, trained = resolve_target(name, spec, args, contexts)
    if path is None:
        res.note(f"{name}: no model file, skipped")
        return None
    if draft is not None and not os.path.isdir(draft):
        res.note(f"{name}: draft {draft} not found: plain rows only")
        draft, trained = None, False
    ids_by_ctx: dict[int, list[int]] = {}
    if spec["source"] != "shape":
        from longspec.tokenizer import Tokenizer

        longest, kind, label = text_prompt(spec["prompt"], Tokenizer.from_checkpoint(path), max(contexts) - n - 1)
        res.note(f"{name}: prompt = {label}; each context's prompt is its first context - {n + 1} tokens")
        ids_by_ctx = {c: longest[:c - n - 1] for c in contexts}
        prompt_kind = kind if kind == spec["prompt"] else f"{kind} (in-domain)"
    else:
        prompt_kind = "random ids"
    t = time.time()
    eng = Engine(path, draft=draft, device=args.device, tokenizer=False, max_context=max(contexts) + n + 64)
    info = eng.target_info
    print(f"[{name}] engine ready in {time.time() - t:.1f} s (draft: {draft})", flush=True)
    prompts, plains = [], {}
    try:
        for ctx in contexts:
            ids = ids_by_ctx.get(ctx) or prompt_ids(ctx, info["vocab_size"])
            prompts.append((ctx, ids))
            base = {"model": name, "context": ctx}
            res.add({**base, "method": "floor", "ms_per_token": round(floor_ms(info, ctx), 4)})
            base["prompt"] = prompt_kind
            plain = None
            try:
                outs = run_twice(eng, ids, n, speculative=False)
                row = {**decode_row(base, outs, "plain"), "prompt_tokens": len(ids)}
                plain = {"row": row, "tokens": list(outs[1].tokens)}
                plains[ctx] = plain
                res.add(row)
            except Exception as e:  # noqa: BLE001 - recorded: the row is missing and the note says why
                res.note(f"{name} @ {ctx}: plain failed: {type(e).__name__}: {str(e)[:300]}")
            if not trained:
                continue
            # beside the --tree row, not instead of it
            sweep = [(t, v, True) for t, v in args.extra_trees]
            auto = [("auto", None, False)] if args.auto and res.auto_ok else []
            for tree, verify, swept in [(args.tree, None, False)] + sweep + auto:
                try:
                    row = speculative_row(eng, ids, n, base, tree, plain, verify)
                    if swept:
                        row["tree_sweep"] = True
                    res.add(row)
                except Exception as e:  # noqa: BLE001
                    if tree == "auto" and isinstance(e, (TypeError, ValueError)):
                        res.auto_ok = False  # an engine without tree="auto": said once, not retried
                        res.note(f'tree="auto" not accepted by this engine ({type(e).__name__}: {str(e)[:200]}): '
                                 "no speculative_auto rows")
                    else:
                        res.note(f"{name} @ {ctx}: speculative tree={tree} failed: {type(e).__name__}: {str(e)[:300]}")
        if name in args.phase_models and draft is not None:
            ctx, ids = prompts[-1]
            for tree in [args.tree] + ([args.small_tree] if args.small_tree else []):
                try:
                    for row in phase_rows(eng, ids, n, {"model": name, "context": ctx}, tree, trained):
                        res.add(row)
                except Exception as e:  # noqa: BLE001
                    res.note(f"{name} @ {ctx}: phase timing tree={tree} failed: {type(e).__name__}: {str(e)[:300]}")
    finally:
        del eng
        free_memory()
    for label, vdir in args.draft_variants.get(name, []):
        bench_draft_variant(name, path, label, vdir, prompts, plains, args, res)
    return path, prompts


def bench_draft_variant(name: str, path: str, label: str, draft: str, prompts: list, plains: dict, args,
                        res) -> None:
    """Speculative rows (--tree, --extra-trees and auto) of another draft of the same target (a LongSpec draft
    directory or a classic draft model's file) on its own engine, against the plain rows of the
    packaged draft's engine (same prompts)."""
    from longspec import Engine

    if not os.path.exists(draft):
        res.note(f"{name}: draft variant {label} ({draft}) not found")
        return
    n = args.new_tokens
    try:
        eng = Engine(path, draft=draft, device=args.device, tokenizer=False,
                     max_context=max(c for c, _ in prompts) + n + 64)
    except Exception as e:  # noqa: BLE001
        res.note(f"{name}: draft variant {label} failed to load: {type(e).__name__}: {str(e)[:300]}")
        return
    try:
        sweep = [(t, v, True) for t, v in args.extra_trees]
        auto = [("auto", None, False)] if args.auto and res.auto_ok else []
        for ctx, ids in prompts:
            for tree, verify, swept in [(args.tree, None, False)] + sweep + auto:
                try:
                    row = speculative_row(eng, ids, n, {"model": name, "context": ctx}, tree, plains.get(ctx), verify)
                    if swept:
                        row["tree_sweep"] = True
                    row.update(draft_variant=label, draft_head=draft_head_size(draft))
                    res.add(row)
                except Exception as e:  # noqa: BLE001
                    res.note(f"{name} @ {ctx}: draft variant {label} tree={tree} failed: "
                             f"{type(e).__name__}: {str(e)[:300]}")
    finally:
        del eng
        free_memory()


def free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


# ---------------------------------------------------------------------------------------------
# Hugging Face

def hf_model(path: str, device: str):
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if path.endswith(".gguf"):
        m = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                              dtype=dtype)
    else:
        m = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return m.to(device).eval()


def time_hf(model, ids: list[int], new_tokens: int, compiled: bool, device: str) -> dict:
    """HF generate: prefill time from a 1-token generation; decode = (N-token time - that) / (N-1)."""
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    x = torch.tensor([ids], device=device)
    kw = dict(do_sample=False, pad_token_id=0, attention_mask=torch.ones_like(x))
    with torch.no_grad():
        t_warm = time.perf_counter()
        for _ in range(2 if compiled else 1):  # warm-up (compiles the static-cache graphs)
            model.generate(x, max_new_tokens=4, min_new_tokens=4, **kw)
        sync()
        t_warm = time.perf_counter() - t_warm
        t0 = time.perf_counter()
        model.generate(x, max_new_tokens=1, min_new_tokens=1, **kw)
        sync()
        t1 = time.perf_counter()
        model.generate(x, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
        sync()
        t2 = time.perf_counter()
    return {"ms_per_token": 1e3 * ((t2 - t1) - (t1 - t0)) / (new_tokens - 1), "prefill_s": t1 - t0,
            "warm_up_s": t_warm}


def bench_hf(name: str, path: str, prompts: list, method: str, args, res) -> None:
    """hf_<method> rows of one model at each of its contexts, on one loaded model."""
    import torch

    try:
        model = hf_model(path, args.device)
        if method == "compile":
            model.generation_config.cache_implementation = "static"
            model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
    except Exception as e:  # noqa: BLE001
        res.note(f"{name}: hf_{method} failed to load: {type(e).__name__}: {str(e)[:300]}")
        return
    for ctx, ids in prompts:
        try:
            r = time_hf(model, ids, args.hf_new_tokens, method == "compile", args.device)
            res.add({"model": name, "context": ctx, "method": "hf_" + method,
                     "ms_per_token": round(r["ms_per_token"], 4), "prefill_s": round(r["prefill_s"], 3),
                     "warm_up_s": round(r["warm_up_s"], 1), "new_tokens": args.hf_new_tokens})
        except Exception as e:  # noqa: BLE001
            res.note(f"{name} @ {ctx}: hf_{method} failed: {type(e).__name__}: {str(e)[:300]}")
    del model
    free_memory()


# ---------------------------------------------------------------------------------------------

def parse_contexts(specs: list[str]) -> dict[str, list[int]]:
    """--contexts NAME=C1,C2,... (repeatable) -> {NAME: [C1, C2, ...]} over the defaults."""
    out = {name: list(spec["contexts"]) for name, spec in MODELS.items()}
    for s in specs:
        name, sep, values = s.partition("=")
        if not sep or name not in MODELS:
            raise SystemExit(f"--contexts {s!r}: expected NAME=C1,C2,... with NAME one of {', '.join(MODELS)}")
        out[name] = sorted({int(v) for v in values.split(",") if v})
    return out


def _git(*args: str, env: dict | None = None) -> str | None:
    """git's output (stripped; "" when it printed nothing), None when git failed or is absent."""
    try:
        out = subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True, timeout=30, check=False,
                             env=env)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def source_tree() -> str | None:
    """Git's tree hash of the files as they are (tracked and untracked, ignored ones not), from a
    scratch index: `git log --format='%h %T' | grep HASH` finds the commit that had them."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, GIT_INDEX_FILE=os.path.join(tmp, "index"))
        if _git("add", "-A", ".", env=env) is None:
            return None
        return _git("write-tree", env=env) or None


def git_commit(tree: str | None) -> str | None:
    """HEAD, or HEAD + "+modified" when the files are not HEAD's: a copy of the tree whose .git
    lags behind (the GPU machine's) must not name a commit it does not hold."""
    head = _git("rev-parse", "--short", "HEAD") or None
    if head is None or tree is None:
        return head
    return head if _git("rev-parse", "HEAD^{tree}") == tree else head + "+modified"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default="bench/results")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--contexts", action="append", default=[], metavar="NAME=C1,C2,...")
    ap.add_argument("--hf", default="generate", help="comma list of generate,compile (empty: none)")
    ap.add_argument("--smollm2", default=None)
    ap.add_argument("--qwen05", default=None)
    ap.add_argument("--smollm2-draft", default=None, help="default: the repository's models/ directory")
    ap.add_argument("--qwen05-draft", default=None, help="default: the repository's models/ directory")
    ap.add_argument("--qwen15", default=None, help="Qwen2.5-Coder-1.5B-Instruct GGUF")
    ap.add_argument("--qwen15-draft", default=None, help="default: the repository's models/ directory")
    ap.add_argument("--work", default="/tmp/longspec_bench")
    ap.add_argument("--new-tokens", type=int, default=128, help="longspec tokens per run (plain, speculative)")
    ap.add_argument("--hf-new-tokens", type=int, default=16)
    ap.add_argument("--tree", default="4,16,16,16,16", help="the explicit speculation tree (level widths)")
    ap.add_argument("--extra-trees", default="", help="more explicit trees, ';'-separated, each giving a "
                    "speculative row with tree_sweep: true (the by-tree-shape table); W1,W2,...@N verifies "
                    "only the grown tree's best N nodes (verify_nodes)")
    ap.add_argument("--draft-head", type=int, default=0,
                    help="give the random drafts of the shape models a head over this many tokens "
                         "(`longspec draft-head`; 0: the whole vocabulary); phase rows say draft_head")
    ap.add_argument("--draft-variant", action="append", default=[], metavar="MODEL:LABEL=DRAFT",
                    help="speculative rows of another draft of a real model: a draft directory or a classic "
                         "draft model's file (repeatable)")
    ap.add_argument("--small-tree", default="2,2,2,1", help="a second tree for the phase timing (empty: none)")
    ap.add_argument("--phase-models", default="llama3-8b-shape", help="comma list (empty: no phase timing)")
    ap.add_argument("--no-auto", dest="auto", action="store_false", help='skip the tree="auto" runs')
    ap.add_argument("--no-plot", dest="plot", action="store_false")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--date", default=dt.date.today().isoformat())
    args = ap.parse_args()
    if args.new_tokens < 2 or args.hf_new_tokens < 2:
        ap.error("--new-tokens and --hf-new-tokens must be at least 2")
    args.tree = [int(w) for w in args.tree.split(",")]
    args.small_tree = [int(w) for w in args.small_tree.split(",") if w]
    from longspec.engine import parse_tree_spec

    args.extra_trees = [parse_tree_spec(t) for t in args.extra_trees.split(";") if t.strip()]
    args.phase_models = [m for m in args.phase_models.split(",") if m]
    args.draft_variants = {}
    for spec in args.draft_variant:
        model, _, rest = spec.partition(":")
        label, sep, vdir = rest.partition("=")
        if not sep or not label or MODELS.get(model, {}).get("source") in (None, "shape"):
            ap.error(f"--draft-variant {spec!r}: expected MODEL:LABEL=DRAFT with MODEL a real model")
        args.draft_variants.setdefault(model, []).append((label, vdir))
    contexts = parse_contexts(args.contexts)
    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in MODELS:
            ap.error(f"unknown model {m!r} (one of {', '.join(MODELS)})")
        if MODELS[m]["source"] != "shape" and min(contexts[m]) <= args.new_tokens + 1:
            ap.error(f"{m}: every context must exceed --new-tokens + 1")
    from longspec.bench import card as card_name

    card = card_name(args.device)
    hf_methods = [m for m in args.hf.split(",") if m]
    os.makedirs(args.out_dir, exist_ok=True)
    tree = source_tree()
    header = {"card": card, "date": args.date, "read_bandwidth_tbs": READ_BW / 1e12, "new_tokens": args.new_tokens,
              "hf_new_tokens": args.hf_new_tokens, "tree": args.tree, "extra_trees": args.extra_trees,
              "commit": git_commit(tree), "source_tree": tree,
              "source": "bench/bench_gpu.py " + " ".join(sys.argv[1:])}
    res = Results(os.path.join(args.out_dir, f"gpu_decode_{args.date}"), header)
    png = os.path.join(args.out_dir, f"gpu_speculative_{args.date}.png")

    def draw():
        if not args.plot:
            return
        try:
            plot(res.rows, png, f"{card}, {args.date}: decode tokens/s, batch 1, greedy\n"
                                f"(longspec {args.new_tokens} new tokens, HF {args.hf_new_tokens})")
        except ImportError as e:
            res.note(f"no plot: {e}")
            args.plot = False
        except Exception as e:  # noqa: BLE001 - a plot must not cost the measurements
            res.note(f"plot failed: {type(e).__name__}: {e}")

    if os.environ.pop(PHASE_ENV, None) is not None:
        res.note(f"{PHASE_ENV} was set in the environment: unset for every row but the phase timing ones")
    prepared = []
    for name in models:
        t = time.time()
        try:
            got = bench_model(name, MODELS[name], contexts[name], args, res)
        except Exception as e:  # noqa: BLE001
            res.note(f"{name}: failed: {type(e).__name__}: {str(e)[:300]}")
            got = None
        print(f"[{name}] longspec rows in {time.time() - t:.0f} s", flush=True)
        if got is not None:
            prepared.append((name, *got))
        draw()
    # Hugging Face after every longspec row: a slow load or compile cannot cost the rows above.
    for method in hf_methods:
        for name, path, prompts in prepared:
            t = time.time()
            bench_hf(name, path, prompts, method, args, res)
            print(f"[{name}] hf_{method} rows in {time.time() - t:.0f} s", flush=True)
            draw()
    print(res.save())
    return 0


if __name__ == "__main__":
    sys.exit(main())
