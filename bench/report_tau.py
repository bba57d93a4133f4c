#!/usr/bin/env python3
"""Combine `longspec eval-draft --out` results into one table, JSON and plot (tau vs context).

    python bench/report_tau.py --name ablation_aoi_smollm2 LABEL=results.json [LABEL=results.json ...]

Writes bench/results/<name>.json, .md and .png (the plot needs matplotlib).
"""
from __future__ import annotations

import argparse
import json
import os


def depth_acceptance(histogram: list[int]) -> list[float | None]:
    """From a pooled histogram (entry k: rounds that emitted k tokens, the last one the bonus),
    the acceptance at each depth d = 1, 2, ...: of the rounds whose first d - 1 draft tokens were
    accepted, the share that also accepted the d-th (None where no round got that far)."""
    rounds_reaching = [sum(histogram[k:]) for k in range(len(histogram))]
    return [rounds_reaching[d + 1] / rounds_reaching[d] if rounds_reaching[d] else None
            for d in range(1, len(histogram) - 1)]


def depth_tables(runs: dict, contexts: list[int], trees: list[str]) -> list[str]:
    """Markdown lines: the acceptance at each depth, for the rows that carry a histogram (a tree
    one level deep and w wide gives the share of rounds in which the target's token was among the
    draft's w best: its top-w recall)."""
    lines = []
    for tree in trees:
        depth = len(tree.split(","))
        rows = [(label, c, r) for label, run in runs.items() for c in contexts for r in run["rows"]
                if r["context"] == c and ",".join(map(str, r["tree"])) == tree and r.get("accepted_histogram")]
        if not rows:
            continue
        lines += [f"tree [{tree}]: acceptance at each depth (rounds that accepted the first d - 1 draft tokens "
                  "and also the d-th), from the pooled histograms", "",
                  "| draft | context | rounds | " + " | ".join(f"depth {d}" for d in range(1, depth + 1)) + " |",
                  "| --- | --- | --- | " + " | ".join("---" for _ in range(depth)) + " |"]
        for label, c, r in rows:
            acc = depth_acceptance(r["accepted_histogram"])
            cells = ["-" if a is None else f"{a:.2f}" for a in acc[:depth]]
            lines.append(f"| {label} | {c} | {r['rounds']} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--title", default="")
    ap.add_argument("--note", default="")
    ap.add_argument("runs", nargs="+", help="LABEL=path/to/eval.json")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    a = ap.parse_args()
    runs = {}
    for item in a.runs:
        label, path = item.split("=", 1)
        run = json.load(open(path))
        # A run of both task shapes (eval-draft --task both) becomes one line per task.
        tasks = sorted({r.get("task", "continuation") for r in run["rows"]})
        if len(tasks) == 1:
            runs[label] = run
            continue
        for task in tasks:
            runs[f"{label}, {task}"] = {**run, "rows": [r for r in run["rows"] if r.get("task", "continuation") == task]}
    contexts = sorted({r["context"] for run in runs.values() for r in run["rows"]})
    # Shallow trees first, then by widths: [1], [4], [16], [64], [1,1,...], [4,16,...].
    trees = sorted({",".join(map(str, r["tree"])) for run in runs.values() for r in run["rows"]},
                   key=lambda t: (len(t.split(",")), [int(x) for x in t.split(",")]))
    lines = [f"# {a.title or a.name}", ""]
    if a.note:
        lines += [a.note, ""]
    for tree in trees:
        lines += [f"tree [{tree}], greedy, tau = tokens per round (accepted + bonus), pooled over documents", "",
                  "| draft | " + " | ".join(f"{c} ctx" for c in contexts) + " |",
                  "| --- | " + " | ".join("---" for _ in contexts) + " |"]
        for label, run in runs.items():
            cells = []
            for c in contexts:
                row = [r for r in run["rows"] if r["context"] == c and ",".join(map(str, r["tree"])) == tree]
                cells.append(f"{row[0]['tau']:.2f} ({row[0]['docs']} docs)" if row else "-")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += depth_tables(runs, contexts, trees)
    table = "\n".join(lines)
    print(table)
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, a.name)
    with open(stem + ".json", "w") as f:
        json.dump({"name": a.name, "note": a.note, "runs": runs}, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(table + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for label, run in runs.items():
            for tree in trees:
                pts = sorted((r["context"], r["tau"]) for r in run["rows"] if ",".join(map(str, r["tree"])) == tree)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                            label=label if len(trees) == 1 else f"{label} [{tree}]")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("tau (tokens per round)")
        ax.set_title(a.title or a.name)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(stem + ".png", dpi=120)
    except ImportError:
        print("matplotlib not installed: no plot")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
