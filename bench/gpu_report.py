"""The report side of bench/bench_gpu.py: rows and notes saved as JSON and a Markdown table after
every row, and the tokens/s-against-context plot. No GPU, torch or engine needed (the tests render
recorded rows)."""
from __future__ import annotations

import json

PHASE_ENV = "LONGSPEC_PHASE_TIMING"


def row_kind(row: dict) -> str:
    """The row's method, with speculative rows of tree="auto" told apart as speculative_auto and
    those of bench_gpu's --extra-trees as speculative_sweep (the shared schema has one method,
    speculative, and the tree and tree_sweep fields say which), and those of --draft-variant as
    speculative_variant (another draft of the same target)."""
    if row["method"] == "speculative" and row.get("draft_variant"):
        return "speculative_variant"
    if row["method"] == "speculative" and row.get("tree_sweep"):
        return "speculative_sweep"
    return "speculative_auto" if row["method"] == "speculative" and row.get("tree") == "auto" else row["method"]


class Results:
    """Rows and notes, written to <stem>.json and .md after every change."""

    def __init__(self, stem: str, header: dict):
        self.stem, self.header, self.rows, self.notes = stem, header, [], []
        self.auto_ok = True

    def add(self, row: dict) -> None:
        self.rows.append(row)
        extra = f", tau {row['tau']}" if row.get("tau") is not None else ""
        print(f"[{row['model']} @ {row['context']}] {row['method']} {row['ms_per_token']:.4f} ms{extra}", flush=True)
        self.save()

    def note(self, text: str) -> None:
        self.notes.append(text)
        print("note:", text, flush=True)
        self.save()

    def save(self) -> str:
        with open(self.stem + ".json", "w") as f:
            json.dump({**self.header, "rows": self.rows, "notes": self.notes}, f, indent=1)
        table = render(self.header["card"], self.header["date"], self.rows, self.notes)
        with open(self.stem + ".md", "w") as f:
            f.write(table + "\n")
        return table


def _ms(r: dict | None, prefill: bool = True) -> str:
    if r is None:
        return "-"
    return f"{r['ms_per_token']:.3f}" + (f" ({r['prefill_s']:.2f} s)" if prefill and "prefill_s" in r else "")


def _phase_ms(r: dict | None) -> str:
    """A phase's ms per round, with its floor when the row carries one."""
    return _ms(r, False) + (f" ({r['floor_ms']:.3f})" if r is not None and "floor_ms" in r else "")


def _head(r: dict) -> str:
    """', head over N tokens' for a draft with a subset LM head (bench_gpu --draft-head)."""
    return f", head over {r['draft_head']} tokens" if r.get("draft_head") else ""


def _ratio(num: dict | None, den: dict | None, unit: str) -> str:
    return f"{num['ms_per_token'] / den['ms_per_token']:.2f}{unit}" if num and den else "-"


def render(card: str, date: str, rows: list[dict], notes: list[str]) -> str:
    by = {}
    for r in rows:
        by.setdefault((r["model"], r["context"]), {})[row_kind(r)] = r
    lines = [f"GPU decode, {card}, {date}: ms per decode step (batch 1, bf16, greedy), prefill seconds in ()",
             "", "| model | context | floor | HF generate | HF static + compile | longspec plain | plain / floor |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for (model, ctx), m in by.items():
        if not {"floor", "plain", "hf_generate", "hf_compile"} & m.keys():
            continue
        ratio = _ratio(m.get("plain"), m.get("floor"), "")
        lines.append(f"| {model} | {ctx} | {_ms(m.get('floor'))} | {_ms(m.get('hf_generate'))} | "
                     f"{_ms(m.get('hf_compile'))} | {_ms(m.get('plain'))} | {ratio} |")
    spec = [(k, m) for k, m in by.items() if "speculative" in m or "speculative_auto" in m]
    if spec:
        lines += ["", ("Speculative decoding: ms per emitted token, same prompt and length as plain "
                       "(goal: speed-up >= 2x over plain)"), "",
                  ("| model | context | plain | speculative (tree) | speed-up | tau | identical to plain "
                   "| tree=auto (plain rounds / rounds) | auto speed-up | HF generate |"),
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for (model, ctx), m in spec:
            plain, s, a = m.get("plain"), m.get("speculative"), m.get("speculative_auto")
            tree = f" ({','.join(map(str, s['tree']))})" if s and isinstance(s.get("tree"), list) else ""
            auto = f"{_ms(a, False)} ({a.get('plain_rounds', '?')}/{a.get('rounds', '?')})" if a else "-"
            same = {True: "yes", False: "NO"}.get((s or a or {}).get("identical_to_plain"), "-")
            if s and a and "identical_to_plain" in a and a["identical_to_plain"] != s.get("identical_to_plain"):
                same += " (auto: NO)" if not a["identical_to_plain"] else " (auto: yes)"
            tau = f"{s['tau']:.2f}" if s and s.get("tau") is not None else "-"
            lines.append(f"| {model} | {ctx} | {_ms(plain, False)} | {_ms(s, False)}{tree} | {_ratio(plain, s, 'x')} | "
                         f"{tau} | {same} | {auto} | {_ratio(plain, a, 'x')} | {_ms(m.get('hf_generate'), False)} |")
    sweep = [r for r in rows if row_kind(r) in ("speculative", "speculative_sweep") and isinstance(r.get("tree"), list)]
    if any(r.get("tree_sweep") for r in sweep):
        lines += ["", "Speculative decoding by tree shape (the --tree row and the --extra-trees rows of one run)", "",
                  "| model | context | tree (nodes) | ms per token | speed-up over plain | tau | identical to plain |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in sorted(sweep, key=lambda r: (r["model"], r["context"], 1 + sum(r["tree"]), r.get("verify_nodes") or 0)):
            plain = by.get((r["model"], r["context"]), {}).get("plain")
            same = {True: "yes", False: "NO"}.get(r.get("identical_to_plain"), "-")
            tau = f"{r['tau']:.2f}" if r.get("tau") is not None else "-"
            # W1,W2,...@N: the grown tree of which the best N nodes were verified (verify_nodes)
            shape = ",".join(map(str, r["tree"])) + (f"@{r['verify_nodes']}" if r.get("verify_nodes") else "")
            lines.append(f"| {r['model']} | {r['context']} | {shape} ({1 + sum(r['tree'])}) | "
                         f"{_ms(r, False)} | {_ratio(plain, r, 'x')} | {tau} | {same} |")
    variants = [r for r in rows if row_kind(r) == "speculative_variant"]
    if variants:
        lines += ["", "Speculative decoding with other drafts of the same target (--draft-variant), beside the "
                      "packaged draft's rows of the same run", "",
                  "| model | context | draft | tree | ms per token | speed-up over plain | tau | identical to plain |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in sorted(variants, key=lambda r: (r["model"], r["context"], r["draft_variant"], str(r["tree"]))):
            plain = by.get((r["model"], r["context"]), {}).get("plain")
            same = {True: "yes", False: "NO"}.get(r.get("identical_to_plain"), "-")
            tau = f"{r['tau']:.2f}" if r.get("tau") is not None else "-"
            tree = ",".join(map(str, r["tree"])) if isinstance(r["tree"], list) else r["tree"]
            lines.append(f"| {r['model']} | {r['context']} | {r['draft_variant']}{_head(r)} | {tree} | "
                         f"{_ms(r, False)} | {_ratio(plain, r, 'x')} | {tau} | {same} |")
    phases = {}
    for r in rows:
        if r["method"] in ("draft_round", "verify_step"):
            phases.setdefault((r["model"], r["context"], tuple(r.get("tree") or ())), {})[r["method"]] = r
    if phases:
        lines += ["", (f"Per speculation round, device-synchronised phases ({PHASE_ENV}=1): ms, floor in () "
                       "(bench_gpu.verify_floor_ms, draft_round_floor_ms)"), "",
                  ("| model | context | tree (rows) | draft_round | verify_step | plain step | decode per round "
                   "| draft |"),
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for (model, ctx, tree), m in phases.items():
            any_row = next(iter(m.values()))
            lines.append(f"| {model} | {ctx} | {','.join(map(str, tree))} ({any_row.get('tree_rows', '?')}) | "
                         f"{_phase_ms(m.get('draft_round'))} | {_phase_ms(m.get('verify_step'))} | "
                         f"{_ms(by.get((model, ctx), {}).get('plain'), False)} | "
                         f"{any_row.get('decode_ms_per_round', float('nan')):.3f} | {any_row.get('draft', '-')}"
                         f"{_head(any_row)} |")
    lines += [""] + [f"note: {x}" for x in notes]
    return "\n".join(lines)


PLOT_LINES = (("hf_generate", "HF generate", "s--"), ("hf_compile", "HF static + compile", "d--"),
              ("plain", "longspec plain", "o-"), ("speculative", "longspec speculative", "^-"),
              ("speculative_auto", 'longspec tree="auto"', "v:"))


def plot(rows: list[dict], path: str, title: str) -> str | None:
    """Decode tokens/s against context, one panel per model with speculative rows (else per model
    with plain rows). Returns the path, or None when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    models = list(dict.fromkeys(r["model"] for r in rows if r["method"].startswith("speculative")))
    models = models or list(dict.fromkeys(r["model"] for r in rows if r["method"] == "plain"))
    if not models:
        return None
    fig, axes = plt.subplots(1, len(models), figsize=(max(5.5 * len(models), 7.0), 4.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        mine = [r for r in rows if r["model"] == model]
        for method, label, style in PLOT_LINES:
            pts = sorted({r["context"]: r for r in mine if row_kind(r) == method}.items())
            if not pts:
                continue
            xs = [c for c, _ in pts]
            ys = [1e3 / r["ms_per_token"] for _, r in pts]
            ax.plot(xs, ys, style, label=label)
            if method == "speculative":
                for x, y, (_, r) in zip(xs, ys, pts):
                    if r.get("tau") is not None:
                        ax.annotate(f"τ={r['tau']:.2f}", (x, y), textcoords="offset points", xytext=(0, 6),
                                    ha="center", fontsize=7)
        contexts = sorted({r["context"] for r in mine})
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(contexts)
        ax.set_xticklabels([f"{c // 1024}k" if c % 1024 == 0 else str(c) for c in contexts])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.margins(y=0.12)
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xlabel("context (tokens)")
        ax.set_ylabel("decode tokens/s (log)")
        ax.set_title(model)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
