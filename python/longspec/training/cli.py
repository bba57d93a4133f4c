"""``longspec train-draft``, ``longspec eval-draft`` and ``longspec draft-head``."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _load_npz_list(path: str) -> list[np.ndarray]:
    with np.load(path) as z:
        return [z[k] for k in sorted(z.files, key=lambda k: (len(k), k))]


def add_train_parser(sub) -> None:
    p = sub.add_parser("train-draft", help="train a LongSpec draft for a target (PyTorch)")
    p.add_argument("--target", required=True, help="HF checkpoint dir or .gguf file (the frozen target)")
    p.add_argument("--data", required=True, help="directory from `python -m longspec.training.data prepare`")
    p.add_argument("--out", required=True, help="output directory (checkpoints, log, final draft in OUT/draft)")
    p.add_argument("--init", default=None, help="start from this draft checkpoint instead of random weights")
    p.add_argument("--stage1-steps", type=int, default=2000)
    p.add_argument("--stage2-steps", type=int, default=0)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--long-len", type=int, default=8192)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--long-batch-size", type=int, default=1)
    p.add_argument("--lr1", type=float, default=5e-4)
    p.add_argument("--lr2", type=float, default=5e-6)
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--mlp-intermediate", type=int, default=0,
                   help="the draft MLP's width (0: the target's, LongSpec's layer; a continued draft keeps its own)")
    p.add_argument("--tree", type=_ints, default=[4, 16, 16, 16, 16])
    p.add_argument("--no-anchor-offsets", action="store_true", help="natural positions in stage 1 (ablation)")
    p.add_argument("--no-noisy-lag", action="store_true")
    p.add_argument("--distill", type=float, default=0.0,
                   help="weight in [0, 1] of the cross-entropy against the target's own next-token "
                        "distribution (0: data only)")
    p.add_argument("--distill-temperature", type=float, default=1.0,
                   help="the target's logits are divided by it in the distillation term (< 1: sharper, "
                        "towards the target's argmax, which greedy verification accepts)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--device", default=None)
    p.add_argument("--time-limit", type=float, default=None, help="stop (and checkpoint) after this many seconds")
    p.add_argument("--eval-every", type=int, default=0,
                   help="held-out loss and top-1 agreement every this many steps and at the end, in the log")
    p.add_argument("--eval-seqs", type=int, default=8, help="held-out sequences (from DATA/heldout_long.npz)")
    p.add_argument("--eval-len", type=int, default=None, help="their length (default: --seq-len)")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep the draft of every save in OUT/checkpoints/step_NNNNNN (for tau along the run)")
    p.add_argument("--until-step", type=int, default=None,
                   help="stop (and checkpoint) at this step: a segment of the run that a later call resumes")
    p.add_argument("--no-resume", action="store_true")
    p.set_defaults(func=cmd_train)


def add_head_parser(sub) -> None:
    p = sub.add_parser("draft-head", help="copy a draft with an LM head over only the K most frequent tokens of a "
                                          "corpus (smaller draft levels; output unchanged)")
    p.add_argument("--draft", required=True, help="LongSpec draft directory")
    p.add_argument("--data", required=True, help="a prepared corpus of the target's tokenizer (train_packed.npz)")
    p.add_argument("--size", type=int, required=True, help="K: how many tokens the draft's head keeps")
    p.add_argument("--out", required=True, help="new draft directory")
    p.set_defaults(func=cmd_head)


def add_shard_parser(sub) -> None:
    p = sub.add_parser("draft-shard", help="rewrite a draft's weights as shards of at most --max-mb MiB "
                                           "(model.safetensors.index.json; one file again when they fit)")
    p.add_argument("draft", help="LongSpec draft directory (rewritten in place)")
    p.add_argument("--max-mb", type=float, default=50.0, help="largest shard in MiB (default 50: a file git "
                                                               "hosts and a device call carries)")
    p.set_defaults(func=cmd_shard)


def cmd_shard(args) -> int:
    from ..drafts import shard_draft

    if not args.max_mb > 0:
        raise SystemExit(f"--max-mb must be positive, got {args.max_mb}")
    if not os.path.isfile(os.path.join(args.draft, "config.json")):
        raise SystemExit(f"{args.draft} is not a LongSpec draft directory (no config.json)")
    files = shard_draft(args.draft, int(args.max_mb * 1024 * 1024))
    print(json.dumps({"draft": args.draft, "files": [os.path.basename(f) for f in files],
                      "bytes": [os.path.getsize(f) for f in files]}))
    return 0


def token_counts(data_dir: str) -> np.ndarray:
    """How often each token id occurs in the corpus's training rows (train_packed.npz)."""
    with np.load(os.path.join(data_dir, "train_packed.npz")) as z:
        packed = z["packed"]
    return np.bincount(packed.reshape(-1).astype(np.int64))


def most_frequent(counts: np.ndarray, k: int) -> np.ndarray:
    """The k ids with the highest counts (ties: the lower id), ascending."""
    order = np.argsort(-counts, kind="stable")[:k]
    return np.sort(order)


def cmd_head(args) -> int:
    from ..drafts import restrict_draft_head

    if args.size < 1:
        raise SystemExit(f"--size must be at least 1, got {args.size}")
    counts = token_counts(args.data)
    keep = most_frequent(counts, args.size)
    coverage = float(counts[keep].sum() / max(1, counts.sum()))
    note = {"rule": f"the {args.size} most frequent token ids of {os.path.abspath(args.data)}/train_packed.npz",
            "corpus_tokens": int(counts.sum()), "corpus_coverage": round(coverage, 5)}
    out = restrict_draft_head(args.draft, args.out, keep.tolist(), note=note)
    print(json.dumps({"draft": out, "head_tokens": len(keep), "corpus_coverage": round(coverage, 5)}))
    return 0


def heldout_sequences(path: str, count: int, length: int) -> np.ndarray:
    """The first `length` tokens of the first `count` held-out documents at least that long: a
    fixed set, the same at every evaluation and in every segment of a run."""
    docs = [d for d in _load_npz_list(path) if len(d) >= length][:count]
    if not docs:
        raise SystemExit(f"--eval-every: no held-out document of {length} tokens in {path}")
    return np.stack([d[:length] for d in docs])


def _init_distributed(cuda: bool) -> bool:
    """Joins the process group a launcher such as torchrun describes (WORLD_SIZE > 1 in the
    environment): NCCL between GPUs (NVLink multicast off), gloo on CPUs. False when alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return True


def cmd_train(args) -> int:
    import torch

    from .train import DraftTrainer, TrainConfig

    cfg = TrainConfig(stage1_steps=args.stage1_steps, stage2_steps=args.stage2_steps, seq_len=args.seq_len,
                      long_len=args.long_len, batch_size=args.batch_size, long_batch_size=args.long_batch_size,
                      lr1=args.lr1, lr2=args.lr2, window=args.window, tree_shape=args.tree,
                      mlp_intermediate_size=args.mlp_intermediate,
                      anchor_offsets=not args.no_anchor_offsets, noisy_lag=not args.no_noisy_lag, seed=args.seed,
                      distill=args.distill, distill_temperature=args.distill_temperature,
                      save_every=args.save_every, eval_every=args.eval_every, keep_checkpoints=args.keep_checkpoints,
                      device=args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    packed = None
    if cfg.stage1_steps > 0:
        with np.load(os.path.join(args.data, "train_packed.npz")) as z:
            packed = z[z.files[0]]
        if packed.shape[1] != cfg.seq_len:
            packed = packed[:, :cfg.seq_len]
    long_docs = _load_npz_list(os.path.join(args.data, "train_long.npz")) if cfg.stage2_steps > 0 else None
    heldout = None
    if cfg.eval_every > 0:
        heldout = heldout_sequences(os.path.join(args.data, "heldout_long.npz"), args.eval_seqs,
                                    args.eval_len or cfg.seq_len)
    if not 0.0 <= cfg.distill <= 1.0:
        raise SystemExit(f"--distill must be in [0, 1], got {cfg.distill}")
    if not cfg.distill_temperature > 0.0:
        raise SystemExit(f"--distill-temperature must be > 0, got {cfg.distill_temperature}")
    group = _init_distributed(cfg.device.startswith("cuda"))
    try:
        trainer = DraftTrainer(args.target, args.out, cfg, init_draft=args.init)
        if not args.no_resume and trainer.try_resume() and trainer.rank == 0:
            print(f"resumed at step {trainer.step}", file=sys.stderr)
        last = trainer.train(packed, long_docs, time_limit_s=args.time_limit, until_step=args.until_step,
                             heldout=heldout)
        if trainer.rank == 0:
            print(json.dumps({"draft": os.path.join(args.out, "draft"), **last}))
    finally:
        if group:
            import torch.distributed as dist

            dist.destroy_process_group()
    return 0


def add_eval_parser(sub) -> None:
    p = sub.add_parser("eval-draft", help="measure tau (tokens per round) of a draft on held-out long documents")
    p.add_argument("--target", required=True)
    p.add_argument("--draft", required=True,
                   help="LongSpec draft checkpoint dir, a smaller model of the same tokenizer (classic draft), or 'oracle'")
    p.add_argument("--data", required=True, help="data dir with heldout_long.npz")
    p.add_argument("--contexts", type=_ints, default=[1024, 4096, 8192])
    p.add_argument("--trees", default="4,16,16,16,16;1,1,1,1",
                   help="tree shapes separated by ';' (each comma-separated widths, optionally @N: grow the "
                        "tree, verify its best N nodes, e.g. 16,32,32,32,32@69)")
    p.add_argument("--docs", type=int, default=4, help="documents per context length")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--exclude", default="stdlib/encodings/",
                   help="comma-separated name fragments of held-out documents to skip (machine-generated "
                        "tables inflate tau); names come from data_manifest.json")
    p.add_argument("--include", default="",
                   help="comma-separated name fragments: keep only documents containing one (e.g. 'stdlib/')")
    p.add_argument("--best-n", default="",
                   help="comma-separated node counts N: also the tau each round would have reached verifying "
                        "only its N best nodes by cumulative draft score (greedy; sets LONGSPEC_BEST_N_PROBE)")
    p.add_argument("--task", default="continuation", choices=("continuation", "instruction", "both"),
                   help="continuation: the document's first tokens, raw (LCC-like); instruction: the document "
                        "and an instruction in one user turn of the chat template (summarise / explain this "
                        "code); both: each")
    p.add_argument("--out", default=None, help="write the results JSON here")
    p.set_defaults(func=cmd_eval)


def heldout_documents(data_dir: str, exclude: list[str], include: list[str] | None = None) -> list[tuple[str, np.ndarray]]:
    """(name, tokens) of the held-out long documents, minus names containing an excluded fragment
    (and, when `include` is given, only names containing an included one)."""
    docs = _load_npz_list(os.path.join(data_dir, "heldout_long.npz"))
    names = [f"doc{i}" for i in range(len(docs))]
    manifest = os.path.join(data_dir, "data_manifest.json")
    if os.path.isfile(manifest):
        listed = json.load(open(manifest)).get("heldout_long", {}).get("names")
        if listed and len(listed) == len(docs):
            names = listed
    keep = [(n, d) for n, d in zip(names, docs) if not any(x and x in n for x in exclude)]
    if include:
        keep = [(n, d) for n, d in keep if any(x in n for x in include)]
    return keep


# Held-out documents whose names end like source files get the code instruction.
CODE_SUFFIXES = (".py", ".pyi", ".go", ".rs", ".c", ".h", ".cc", ".cpp", ".hpp", ".js", ".ts", ".rb", ".pl", ".pm",
                 ".java", ".sh")
INSTRUCTIONS = {"code": "Explain what this code does, part by part.", "prose": "Summarise this document."}


def instruction_for(name: str) -> str:
    return INSTRUCTIONS["code" if name.lower().endswith(CODE_SUFFIXES) else "prose"]


def instruction_prompt(tokenizer, doc: np.ndarray, ctx: int, instruction: str) -> list[int]:
    """LongBench's instruction shape: one user turn of the chat template holding the start of the
    document's text, then the instruction; at most `ctx` tokens (the document is cut to fit, the
    template and the instruction never are)."""
    n = min(ctx, len(doc))
    for _ in range(8):
        text = tokenizer.decode(doc[:n].tolist())
        ids = tokenizer.apply_chat_template([{"role": "user", "content": f"{text}\n\n{instruction}"}])
        if len(ids) <= ctx:
            return ids
        n -= len(ids) - ctx + 4  # re-encoding the cut text may merge a few tokens differently
        if n <= 0:
            break
    raise ValueError(f"instruction prompt: the chat template and instruction alone exceed {ctx} tokens")


def evaluate_tau(engine, docs: list[tuple[str, np.ndarray]], contexts: list[int],
                 trees: list[list[int] | tuple[list[int], int | None]], n_docs: int, new_tokens: int,
                 task: str = "continuation") -> list[dict]:
    """Greedy speculative generation from each held-out document's prompt of `ctx` tokens (the raw
    first tokens, or, for task "instruction", the document and an instruction through the chat
    template: `engine` needs its tokenizer); tau is tokens produced per round, pooled over the
    documents. Continuations ignore EOS (a document goes on); answers to an instruction stop at it.
    Each row also pools the rounds' accepted-length histogram (entry k: rounds that emitted k
    tokens), from which the acceptance at each depth follows."""
    limit = engine.target_info["max_position"]
    rows = []
    for ctx in contexts:
        ctx = min(ctx, limit - new_tokens)
        usable = [(n, d) for n, d in docs if len(d) >= ctx][:n_docs]
        if task == "instruction":
            prompts = [instruction_prompt(engine.tokenizer, d, ctx, instruction_for(n)) for n, d in usable]
        else:
            prompts = [d[:ctx].tolist() for _, d in usable]
        for spec in trees:
            tree, verify_nodes = spec if isinstance(spec, tuple) else (spec, None)
            per_doc, rounds, produced, spec_time = [], 0, 0, 0.0
            histogram: list[int] = []  # entry k: rounds that emitted k tokens (0 .. depth + 1)
            best_n: dict[int, int] = {}  # LONGSPEC_BEST_N_PROBE: tokens had only N nodes been verified
            for (name, _), prompt in zip(usable, prompts):
                out = engine.generate(prompt, max_new_tokens=new_tokens, ignore_eos=task != "instruction", tree=tree,
                                      verify_nodes=verify_nodes)
                s = out.stats
                for k, n in enumerate(s["accepted_histogram"]):
                    histogram += [0] * (k + 1 - len(histogram))
                    histogram[k] += n
                made = sum(k * n for k, n in enumerate(s["accepted_histogram"]))
                for n, tokens in s["best_n_tokens"].items():
                    best_n[n] = best_n.get(n, 0) + tokens
                rounds += s["rounds"]
                produced += made
                spec_time += s["decode_s"]
                per_doc.append({"doc": name, "tau": made / max(1, s["rounds"]), "rounds": s["rounds"],
                                "prompt_tokens": len(prompt), "new_tokens": made})
            if usable:
                row = {"task": task, "context": ctx, "tree": tree, "verify_nodes": verify_nodes, "docs": len(usable),
                       "tau": produced / max(1, rounds), "per_doc": per_doc, "rounds": rounds,
                       "accepted_histogram": histogram, "decode_s": spec_time}
                if best_n:  # tau had each round verified only its N best nodes (the rounds as they ran)
                    row["tau_best_n"] = {str(n): tokens / max(1, rounds) for n, tokens in sorted(best_n.items())}
                rows.append(row)
    return rows


def cmd_eval(args) -> int:
    from ..engine import Engine, format_tree_spec, parse_tree_spec

    trees = [parse_tree_spec(t) for t in args.trees.split(";") if t.strip()]
    docs = heldout_documents(args.data, [x for x in args.exclude.split(",") if x],
                             [x for x in args.include.split(",") if x])
    tasks = ["continuation", "instruction"] if args.task == "both" else [args.task]
    if args.best_n:
        os.environ["LONGSPEC_BEST_N_PROBE"] = ",".join(str(n) for n in _ints(args.best_n))
    eng = Engine(args.target, draft=args.draft, device=args.device, num_threads=args.threads,
                 tokenizer="instruction" in tasks, prefill_chunk=512)
    t0 = time.time()
    rows = [r for task in tasks for r in evaluate_tau(eng, docs, args.contexts, trees, args.docs, args.new_tokens, task)]
    result = {"target": args.target, "draft": args.draft, "device": eng.device, "rows": rows,
              "instructions": INSTRUCTIONS if "instruction" in tasks else None,
              "seconds": round(time.time() - t0, 1)}
    print(f"{'task':>12} {'context':>8} {'tree':>20} {'docs':>5} {'tau':>6}")
    for r in rows:
        best = "".join(f"  best {n}: {t:.2f}" for n, t in r.get("tau_best_n", {}).items())
        tree = format_tree_spec(r["tree"], r.get("verify_nodes"))
        print(f"{r['task']:>12} {r['context']:>8} {tree:>20} {r['docs']:>5} {r['tau']:>6.2f}{best}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0
