#!/usr/bin/env python3
"""How long a user waits: the README's first command, timed from the moment it is started.

Runs ``longspec generate --chat PROMPT`` (the built-in default model, files already in the cache)
as a fresh process several times and records, per run, the seconds until the first generated text
reaches stdout and until the process exits, with the token count and decode speed the command
prints. One unrecorded run first fills the caches, as a user's first run would have.

    python bench/bench_first_token.py --label before
    python bench/bench_first_token.py --label after --extra "--no-speculative"

Results are merged by label into bench/results/first_token_<date>.json and the markdown table
next to it is rewritten from all labels of that date. Machine load changes the numbers: the load
average before the runs is recorded with them.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Write a haiku about the sea."
STATS_LINE = re.compile(r"\[(\d+) tokens, ([\d.]+) tok/s decode.*?(?:tau=([\d.]+))?\]\s*$")


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def git_head() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":!bench/results"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return head + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def one_run(cmd: list[str]) -> dict:
    """Starts ``cmd`` and times its first stdout byte and its exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.read(1)
    first_s = time.perf_counter() - start
    rest, err = proc.communicate()
    total_s = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{err.decode(errors='replace')[-2000:]}")
    run = {"first_token_s": round(first_s, 3), "total_s": round(total_s, 3),
           "text": (first + rest).decode(errors="replace").strip()}
    for line in err.decode(errors="replace").splitlines():
        m = STATS_LINE.search(line)
        if m:
            run["new_tokens"] = int(m.group(1))
            run["decode_tokens_per_s"] = float(m.group(2))
            run["tau"] = float(m.group(3)) if m.group(3) else None
    return run


def write_markdown(path: Path, result: dict) -> None:
    lines = [f"# First run: `longspec generate --chat \"{PROMPT}\"`",
             f"{result['date']}, {result['machine']['cpu']} ({result['machine']['cores']} cores); "
             "a fresh process per run, model and tokenizer already cached; medians over the runs",
             "",
             "| label | extra args | code | load avg | runs | first token s | total s | tokens | decode tok/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, e in result["entries"].items():
        lines.append(f"| {label} | `{e['extra'] or '-'}` | {e['code']} | {e['load_avg_1min']:.2f} | {len(e['runs'])} | "
                     f"{e['first_token_s']:.2f} | {e['total_s']:.2f} | {e['new_tokens']} | "
                     f"{e['decode_tokens_per_s']:.1f} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", required=True, help="name of this measurement, e.g. before / after")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--extra", default="", help="extra arguments for longspec generate, e.g. '--no-speculative'")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--code", default=None,
                    help="what code ran (default: this checkout's commit); set it when PYTHONPATH points elsewhere")
    args = ap.parse_args()

    cmd = [sys.executable, "-m", "longspec", "generate", "--chat", PROMPT, *shlex.split(args.extra)]
    one_run(cmd)  # fills the tokenizer cache (and the OS file cache) like any earlier run would
    load = os.getloadavg()[0]
    runs = [one_run(cmd) for _ in range(args.runs)]
    for r in runs:
        print(f"first token {r['first_token_s']:.2f} s, total {r['total_s']:.2f} s, "
              f"{r.get('new_tokens')} tokens at {r.get('decode_tokens_per_s')} tok/s", file=sys.stderr)
    entry = {
        "extra": args.extra, "code": args.code or git_head(), "load_avg_1min": round(load, 2), "runs": runs,
        "first_token_s": round(statistics.median(r["first_token_s"] for r in runs), 3),
        "total_s": round(statistics.median(r["total_s"] for r in runs), 3),
        "new_tokens": runs[0].get("new_tokens"),
        "decode_tokens_per_s": round(statistics.median(r.get("decode_tokens_per_s", 0.0) for r in runs), 1),
        "tau": runs[0].get("tau"),
    }
    date = dt.date.today().isoformat()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"first_token_{date}.json"
    result = json.loads(path.read_text()) if path.is_file() else {
        "date": date, "machine": {"cpu": cpu_model(), "cores": os.cpu_count()}, "prompt": PROMPT, "entries": {}}
    result["entries"][args.label] = entry
    path.write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(path.with_suffix(".md"), result)
    print(f"{args.label}: first token {entry['first_token_s']:.2f} s, total {entry['total_s']:.2f} s -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
