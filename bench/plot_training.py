#!/usr/bin/env python3
"""Held-out curves of a draft's training, over one run or several segments of one (each segment a
`train-draft --init` of the one before), so that the point of diminishing returns shows.

    python bench/plot_training.py --name draft_qwen15_training_2026-12-02 \
        SEGMENT=models/.../q15_s1_train_log.jsonl SEGMENT=models/.../q15_s2_train_log.jsonl

Segments are laid end to end (a segment's steps start where the previous one's ended). Reads the
rows with held-out metrics (`heldout_ce`, `heldout_agree`, written every `--eval-every` steps) and
the training rows' `agree` (smoothed over --window rows). Writes bench/results/<name>.md (the
held-out table) and .png (needs matplotlib).
"""
from __future__ import annotations

import argparse
import json
import os


def read_log(path: str) -> tuple[list[dict], list[dict]]:
    """(held-out rows, training rows) of one train_log.jsonl; a held-out evaluation logged twice at
    one step (the last save repeats it) counts once."""
    heldout, train = {}, []
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if "heldout_ce" in row:
                heldout[row["step"]] = row
            elif "loss" in row:
                train.append(row)
    return [heldout[s] for s in sorted(heldout)], train


def chain(segments: list[tuple[str, str]]) -> list[dict]:
    """Every segment's rows with `total_step` (steps since the first segment began) and `segment`."""
    out, offset = [], 0
    for label, path in segments:
        heldout, train = read_log(path)
        last = max([r["step"] for r in heldout + train], default=0)
        for r in heldout:
            out.append({**r, "segment": label, "total_step": offset + r["step"], "kind": "heldout"})
        for r in train:
            out.append({**r, "segment": label, "total_step": offset + r["step"], "kind": "train"})
        offset += last
    return out


def smooth(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def table(rows: list[dict]) -> list[str]:
    lines = ["| segment | step (total) | held-out CE | held-out top-1 agreement |", "| --- | --- | --- | --- |"]
    for r in rows:
        if r["kind"] == "heldout":
            lines.append(f"| {r['segment']} | {r['step']} ({r['total_step']}) | {r['heldout_ce']:.3f} | "
                         f"{r['heldout_agree']:.3f} |")
    return lines


def plot(rows: list[dict], path: str, title: str, window: int) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax_ce, ax_agree) = plt.subplots(1, 2, figsize=(11, 4))
    for i, segment in enumerate(dict.fromkeys(r["segment"] for r in rows)):
        color = f"C{i}"
        held = [r for r in rows if r["segment"] == segment and r["kind"] == "heldout"]
        train = [r for r in rows if r["segment"] == segment and r["kind"] == "train" and "agree" in r]
        ax_ce.plot([r["total_step"] for r in held], [r["heldout_ce"] for r in held], "o-", color=color,
                   label=f"{segment} held-out")
        ax_agree.plot([r["total_step"] for r in held], [r["heldout_agree"] for r in held], "o-",
                      color=color, label=f"{segment} held-out")
        if train:
            ax_agree.plot([r["total_step"] for r in train], smooth([r["agree"] for r in train], window), alpha=0.4, color=color,
                          label=f"{segment} training (mean of {window} rows)")
    ax_ce.set(xlabel="step (segments end to end)", ylabel="held-out cross-entropy", title="held-out CE")
    ax_agree.set(xlabel="step (segments end to end)", ylabel="top-1 agreement with the target",
                 title="agreement")
    for ax in (ax_ce, ax_agree):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--title", default="")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    ap.add_argument("--window", type=int, default=20, help="training rows averaged in the agreement curve")
    ap.add_argument("segments", nargs="+", metavar="LABEL=train_log.jsonl")
    a = ap.parse_args(argv)
    segments = []
    for spec in a.segments:
        label, _, path = spec.partition("=")
        if not label or not path:
            ap.error(f"expected LABEL=path, got {spec!r}")
        if not os.path.isfile(path):
            ap.error(f"{path}: no such file")
        segments.append((label, path))
    if a.window < 1:
        ap.error("--window must be at least 1")
    rows = chain(segments)
    if not any(r["kind"] == "heldout" for r in rows):
        ap.error("no held-out rows in these logs (train-draft --eval-every writes them)")
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, a.name)
    title = a.title or a.name
    lines = [f"# {title}", "", *table(rows), ""]
    if plot(rows, stem + ".png", title, a.window):
        lines.append(f"![held-out curves]({a.name}.png)")
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
