"""Command line: ``longspec generate``, ``longspec info``."""
from __future__ import annotations

import argparse
import json
import os
import sys


def _tree(text: str) -> list[int]:
    parts = text.split(",")
    try:
        widths = [int(x) for x in parts]
    except ValueError:
        widths = []
    if not widths or any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"tree must be comma-separated positive integers such as 4,16,16, got {text!r}")
    return widths


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="smollm2", help="HF checkpoint dir, .gguf file, or 'smollm2' (default)")
    p.add_argument("--draft", default="auto", help="draft checkpoint dir, 'auto' (packaged, if any) or 'none'")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    p.add_argument("--max-context", type=int, default=0)


def _make_engine(args):
    from .engine import Engine

    draft = None if args.draft in ("none", "None", "") else args.draft
    return Engine(args.target, draft, args.device, num_threads=args.threads, max_context=args.max_context)


def cmd_generate(args) -> int:
    eng = _make_engine(args)
    kwargs = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                  top_k=args.top_k, seed=args.seed, speculative=not args.no_speculative)
    if args.tree:
        kwargs["tree"] = args.tree
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    if args.chat:
        prompt = eng.tokenizer.apply_chat_template([{"role": "user", "content": prompt}])
    for piece in eng.stream(prompt, **kwargs):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    out = eng.last_stream_output
    s = out.stats
    msg = (f"[{s['new_tokens']} tokens, {s['tokens_per_s']:.1f} tok/s decode, prompt {s['prompt_tokens']} tokens "
           f"at {s['prefill_tokens_per_s']:.0f} tok/s, finish={out.finish_reason}")
    if s.get("speculative"):
        msg += f", tau={s['mean_accepted']:.2f}"
    print(msg + "]", file=sys.stderr)
    if args.stats_json:
        print(json.dumps(s), file=sys.stderr)
    return 0


def cmd_info(args) -> int:
    eng = _make_engine(args)
    print(json.dumps({"target": eng.target_path, "device": eng.device, "target_info": eng.target_info,
                      "draft": eng.draft_path, "draft_info": eng.draft_info, "tree": eng.tree}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="longspec", description="Lossless speculative decoding for long contexts")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="generate text after a prompt")
    _engine_args(g)
    g.add_argument("prompt", nargs="?", help="prompt text (default: read stdin)")
    g.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    g.add_argument("--max-new-tokens", type=int, default=128)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--tree", type=_tree, default=None, help="tree shape, e.g. 4,16,16,16,16")
    g.add_argument("--no-speculative", action="store_true")
    g.add_argument("--stats-json", action="store_true")
    g.set_defaults(func=cmd_generate)
    i = sub.add_parser("info", help="describe a model")
    _engine_args(i)
    i.set_defaults(func=cmd_info)
    from .training.cli import add_eval_parser, add_train_parser

    add_train_parser(sub)
    add_eval_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `longspec generate ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, TypeError, OSError, NotImplementedError, MemoryError) as exc:  # README "Errors"
        print(f"longspec: error: {exc}", file=sys.stderr)
        return 2
