"""Command line: ``longspec generate``, ``longspec serve``, ``longspec info``, ``longspec bench``."""
from __future__ import annotations

import argparse
import json
import os
import sys


def _tree(text: str) -> list[int] | str:
    if text == "auto":
        return text
    parts = text.split(",")
    try:
        widths = [int(x) for x in parts]
    except ValueError:
        widths = []
    if not widths or any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"tree must be 'auto' or comma-separated positive integers such as 4,16,16, got {text!r}")
    return widths


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="smollm2", help="HF checkpoint dir, .gguf file, or 'smollm2' (default)")
    p.add_argument("--draft", default="auto",
                   help="LongSpec draft checkpoint dir, a smaller model of the same tokenizer (.gguf or checkpoint "
                        "dir: a classic two-model draft), 'auto' (packaged, if any) or 'none'")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    p.add_argument("--max-context", type=int, default=0)


_DECODING_HELP = ("Decoding: with a draft, speculative with the draft's tree on a GPU; plain on the CPU, where "
                  "plain measured fastest (README 'Numbers'). --tree or --speculative decode speculatively, "
                  "--no-speculative plainly, on any device.")


def _decoding_args(p: argparse.ArgumentParser, tree_help: str) -> None:
    p.add_argument("--tree", type=_tree, default=None, help=tree_help + " (implies --speculative)")
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--speculative", dest="speculative", action="store_const", const=True, default=None,
                        help="decode speculatively with the draft (its own tree unless --tree)")
    choice.add_argument("--no-speculative", dest="speculative", action="store_const", const=False,
                        help="decode plainly even with a draft")


def _make_engine(args, tokenizer: bool = True):
    from .engine import Engine

    draft = None if args.draft in ("none", "None", "") else args.draft
    return Engine(args.target, draft, args.device, num_threads=args.threads, max_context=args.max_context,
                  tokenizer=tokenizer)


def cmd_generate(args) -> int:
    eng = _make_engine(args)
    kwargs = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                  top_k=args.top_k, seed=args.seed, speculative=args.speculative, stop=args.stop)
    if args.tree:
        kwargs["tree"] = args.tree
    if args.verify_nodes is not None:
        kwargs["verify_nodes"] = args.verify_nodes
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


def _served_model_name(args, eng) -> str:
    if args.served_model_name:
        return args.served_model_name
    from .models import ALIASES, DEFAULT_TARGET

    if args.target.lower() in ALIASES:
        return DEFAULT_TARGET
    name = os.path.basename(os.path.normpath(eng.target_path))
    return name[:-5] if name.endswith(".gguf") else name


def cmd_serve(args) -> int:
    try:
        from .server import serve
    except ImportError as exc:  # the optional extra is missing
        print(f"longspec: error: serve needs the server extra: pip install \"longspec[serve]\" ({exc})",
              file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        raise ValueError(f"port must be in [0, 65535], got {args.port}")
    if args.max_queue < 0:
        raise ValueError(f"max-queue must be >= 0, got {args.max_queue}")
    eng = _make_engine(args)
    name = _served_model_name(args, eng)
    plan = (f"speculative, tree {args.tree or eng.tree}" if eng.speculates(args.speculative, args.tree)
            else "plain decoding")
    print(f"longspec: serving {name!r} ({eng.device}, {plan}) on http://{args.host}:{args.port}/v1", file=sys.stderr)
    serve(eng, model_name=name, host=args.host, port=args.port, max_queue=args.max_queue,
          speculative=args.speculative, tree=args.tree, log_level=args.log_level)
    return 0


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def cmd_info(args) -> int:
    eng = _make_engine(args, tokenizer=False)  # token ids are enough for the plan
    plan = eng.memory_plan()
    print(json.dumps({"target": eng.target_path, "device": eng.device, "target_info": eng.target_info,
                      "draft": eng.draft_path, "draft_info": eng.draft_info, "tree": eng.tree,
                      "speculative_default": eng.speculative_default, "memory": plan},
                     indent=2))
    draft = (f"; draft {_bytes(plan['draft_weights_bytes'])} + ring {_bytes(plan['draft_cache_bytes'])}"
             if eng.has_draft else "")
    print(f"memory plan ({plan['device']}): weights {_bytes(plan['weights_bytes'])}; "
          f"K/V {_bytes(plan['kv_bytes_per_token'])}/token, {_bytes(plan['kv_bytes_at_context_limit'])} at "
          f"{plan['context_limit']} tokens{draft}; total {_bytes(plan['total_bytes_at_context_limit'])}",
          file=sys.stderr)
    return 0


def _contexts(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"contexts must be comma-separated positive integers such as 1024,4096, "
                                         f"got {text!r}")
    return values


def cmd_bench(args) -> int:
    from . import bench

    if args.new_tokens < 2:
        raise ValueError(f"new-tokens must be >= 2, got {args.new_tokens}")
    if args.plot:
        try:
            bench.require_matplotlib()  # before minutes of measuring, not after
        except ImportError as exc:
            print(f"longspec: error: {exc}", file=sys.stderr)
            return 2
    from .models import resolve_model_path
    from .tokenizer import has_tokenizer

    # Text prompts when the checkpoint has a tokenizer; a bare checkpoint is measured on token ids.
    eng = _make_engine(args, tokenizer=has_tokenizer(resolve_model_path(args.target, "target")))
    result = bench.run(eng, target=args.target, contexts=args.contexts, new_tokens=args.new_tokens, tree=args.tree,
                       hf=not args.no_hf, log=bench._stderr)
    print(bench.table(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        print(f"wrote {args.out}", file=sys.stderr)
    if args.plot:
        bench.plot(result, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="longspec", description="Lossless speculative decoding for long contexts")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="generate text after a prompt", description=_DECODING_HELP)
    _engine_args(g)
    g.add_argument("prompt", nargs="?", help="prompt text (default: read stdin)")
    g.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    g.add_argument("--max-new-tokens", type=int, default=128)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--stop", action="append", default=None, metavar="TEXT",
                   help="stop where this text appears (not printed); repeat for several")
    _decoding_args(g, "tree shape, e.g. 4,16,16,16,16 or the chain 1,1,1")
    g.add_argument("--verify-nodes", type=int, default=None, metavar="N",
                   help="verify only the root and the N best nodes of each grown tree (with --tree, e.g. "
                        "--tree 16,32,32,32,32 --verify-nodes 69)")
    g.add_argument("--stats-json", action="store_true")
    g.set_defaults(func=cmd_generate)
    s = sub.add_parser("serve", help="an OpenAI-compatible HTTP server (needs the [serve] extra)",
                       description=_DECODING_HELP)
    _engine_args(s)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--max-queue", type=int, default=16,
                   help="requests that may wait while one generates; more are answered 503 (default 16)")
    s.add_argument("--served-model-name", default=None,
                   help="the model id clients send (default: the target's file or directory name)")
    _decoding_args(s, "tree shape for every request, e.g. 1,1,1")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    s.set_defaults(func=cmd_serve)
    i = sub.add_parser("info", help="describe a model and its memory plan")
    _engine_args(i)
    i.set_defaults(func=cmd_info)
    b = sub.add_parser("bench", help="plain vs speculative vs HF transformers decode speed on this machine",
                       description="Greedy decode speed (ms per new token, prefill excluded) of plain and "
                                   "speculative decoding, and of HF transformers' generate when torch and "
                                   "transformers are installed, after prompts of each context length.")
    _engine_args(b)
    b.add_argument("--contexts", type=_contexts, default=[1024, 4096], help="prompt lengths (default 1024,4096)")
    b.add_argument("--new-tokens", type=int, default=64, help="tokens generated per measurement (default 64)")
    b.add_argument("--tree", type=_tree, default=None, help="tree for the speculative runs (default: the draft's)")
    b.add_argument("--no-hf", action="store_true", help="leave HF transformers out")
    b.add_argument("--out", default=None, metavar="FILE.json", help="write the rows (shared benchmark schema)")
    b.add_argument("--plot", default=None, metavar="FILE.png", help="plot tokens/s against context (matplotlib)")
    b.set_defaults(func=cmd_bench)
    from .training.cli import add_eval_parser, add_head_parser, add_shard_parser, add_train_parser

    add_train_parser(sub)
    add_eval_parser(sub)
    add_head_parser(sub)
    add_shard_parser(sub)
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
