#!/usr/bin/env python3
"""Where a decode step and a speculation round spend their time, kernel by kernel.

Run under Nsight Compute with profiling off at start; the script switches it on (cuProfilerStart)
only around the steps it wants, from the generation callback, so the 32k-token prefill is not
profiled:

    ncu --profile-from-start off --metrics gpu__time_duration.sum --csv --print-units base \\
        python3 bench/gpu/profile_round.py qwen2.5-0.5b-shape 32768 --phase speculative > spec.csv
    python3 bench/gpu/profile_round.py --digest spec.csv

The model is a random-weight checkpoint of the shape (bench/make_random_checkpoint.py) with a
random LongSpec draft: kernel times do not depend on weight values. Two phases are profiled in
separate runs: `--phase plain` (three decode steps) or `--phase speculative` (one round).
Durations are of kernels run one at a time (Nsight serialises them), so the gaps between launches
that a graph replay pays are not in them: the sum is a lower bound of the step.

With `--trace` the script runs instead under the CUPTI tracer (bench/gpu/kernel_trace.cc, loaded
by LD_PRELOAD) and the steps run as they normally do, graph replays and overlaps included:

    LD_PRELOAD=/tmp/libkernel_trace.so KERNEL_TRACE_CSV=plain.trace \
        python3 bench/gpu/profile_round.py qwen2.5-0.5b-shape 32768 --phase plain --trace
    python3 bench/gpu/profile_round.py --timeline plain.trace
"""
from __future__ import annotations

import argparse
import collections
import csv
import ctypes
import os
import sys


def profiler(on: bool) -> None:
    cuda = ctypes.CDLL("libcuda.so.1")
    ctx = ctypes.c_void_p()
    cuda.cuCtxGetCurrent(ctypes.byref(ctx))
    if not ctx.value:  # the engine's thread has not made the primary context current: do it here
        dev = ctypes.c_int()
        cuda.cuDeviceGet(ctypes.byref(dev), 0)
        cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev)
        cuda.cuCtxSetCurrent(ctx)
    rc = (cuda.cuProfilerStart if on else cuda.cuProfilerStop)()
    print(f"profiler {'on' if on else 'off'}: {rc}", file=sys.stderr, flush=True)


def tracer(action: str) -> None:
    """kernel_trace_clear / kernel_trace_flush of the preloaded CUPTI tracer."""
    lib = ctypes.CDLL(None)
    getattr(lib, f"kernel_trace_{action}")()
    print(f"trace {action}", file=sys.stderr, flush=True)


def run(args) -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from make_random_checkpoint import write

    from longspec import Engine, random_draft

    if args.model:  # a real model file and its draft (a GGUF's own tokenizer is not needed)
        path, draft = args.model, args.draft
    else:
        path = write(args.shape, os.path.join(args.work, args.shape), max_position=args.context + 4096)
        draft = os.path.join(args.work, f"{args.shape}-random-draft")
        if not os.path.isfile(os.path.join(draft, "model.safetensors")):
            random_draft(path, draft, seed=0)
    eng = Engine(path, draft=draft, device="cuda", tokenizer=False, max_context=args.context + 256)
    vocab = eng.target_info["vocab_size"]
    ids = [(i * 7919 + 13) % (vocab - 10) + 5 for i in range(args.context)]
    tree = [int(w) for w in args.tree.split(",")]

    def profiled(first: int, last: int):
        """A callback that profiles between its first-th and last-th call (1 = after the prefill)."""
        calls = [0]

        def cb(new):
            calls[0] += 1
            if calls[0] == first:
                print("== profiling", file=sys.stderr, flush=True)
                tracer("clear") if args.trace else profiler(True)
            elif calls[0] == last:
                tracer("flush") if args.trace else profiler(False)
                return False
            return None
        return cb

    kw, last = (dict(speculative=False), 4) if args.phase == "plain" else (dict(speculative=True, tree=tree), 2)
    if args.trace:  # the tracer costs nothing per kernel: take more steps
        last = 12 if args.phase == "plain" else 4
    eng.generate(ids, max_new_tokens=24, ignore_eos=True, **kw)  # captures the graphs
    if args.trace and args.whole:
        # As bench_gpu.py runs: no callback (one would make every step wait for the host), the
        # whole generation traced, prefill included.
        tracer("clear")
        eng.generate(ids, max_new_tokens=24, ignore_eos=True, **kw)
        tracer("flush")
        return
    eng.generate(ids, max_new_tokens=24, ignore_eos=True, callback=profiled(1, last), **kw)


def digest(path: str) -> None:
    """Kernel table from ncu's CSV: totals by kernel name and launch shape."""
    phase, rows = os.path.basename(path), collections.defaultdict(list)
    with open(path) as f:
        lines = f.read().splitlines()
    header = None
    for line in lines:
        if line.startswith('"ID"'):
            header = next(csv.reader([line]))
            continue
        if header is None or not line.startswith('"'):
            continue
        rec = dict(zip(header, next(csv.reader([line]))))
        if rec.get("Metric Name") != "gpu__time_duration.sum":
            continue
        name = rec["Kernel Name"]
        if name.endswith(")"):  # drop the parameter list, keep the template arguments
            name = name[:name.rfind("(")]
        rows[phase].append((name.replace("longspec::cuda::", "")[:110], rec.get("Grid Size", ""), rec.get("Block Size", ""),
                            float(rec["Metric Value"].replace(",", "")) / 1e3))
    for phase, ks in rows.items():
        total = sum(k[3] for k in ks)
        print(f"\n## {phase}: {len(ks)} kernels, {total:.1f} us summed (kernels alone, no launch gaps)")
        by = collections.defaultdict(lambda: [0, 0.0])
        for name, grid, block, us in ks:
            by[(name, grid, block)][0] += 1
            by[(name, grid, block)][1] += us
        print(f"{'us':>9} {'share':>6} {'n':>4}  kernel  grid  block")
        for (name, grid, block), (n, us) in sorted(by.items(), key=lambda kv: -kv[1][1])[:40]:
            print(f"{us:9.1f} {100 * us / total:5.1f}% {n:4d}  {name}  {grid}  {block}")


def read_trace(path: str) -> tuple[list, list]:
    """The tracer's CSV: the device's records (start, end, graph, correlation, grid, name; kernels
    and copies) and the host's API calls (start, end, name), in file order."""
    device, host = [], []
    with open(path) as f:
        for line in f:
            start, end, graph, corr, grid, _block, name = line.rstrip("\n").split(",", 6)
            if grid == "host":
                host.append((int(start), int(end), name))
            else:
                device.append((int(start), int(end), int(graph), int(corr), grid, name.replace("longspec::cuda::", "")))
    return device, host


def timeline(path: str) -> None:
    """Step by step from the tracer's CSV: each graph replay (one correlation id) is a step; its
    span, its kernels' summed time, and per kernel in launch order the mean time and the gap
    before it (negative: it started before the previous one ended, as programmatic dependent
    launch allows)."""
    steps = collections.defaultdict(list)
    for start, end, graph, corr, grid, name in read_trace(path)[0]:
        steps[(graph, corr) if graph else (0, start)].append((start, end, name[:90], grid))
    graphs = [sorted(ks) for (g, _), ks in steps.items() if g]
    if not graphs:
        print(f"{path}: no graph replays")
        return
    sizes = collections.Counter(len(ks) for ks in graphs)
    # A speculation round replays several graphs (the draft's levels, the verification): one
    # section per graph size, the most frequent first.
    for n_kernels, _ in sizes.most_common():
        print_replays(path, [ks for ks in graphs if len(ks) == n_kernels], dict(sizes))


def print_replays(path: str, same: list, sizes: dict) -> None:
    """Span, kernel table and the last replay in order of replays of one graph (same kernel count)."""
    n_kernels = len(same[0])
    spans = [ks[-1][1] - ks[0][0] for ks in same]
    busy = [sum(e - s for s, e, _, _ in ks) for ks in same]
    print(f"## {os.path.basename(path)}: {len(same)} replays of {n_kernels} kernels"
          f" (replay sizes: {sizes})")
    print(f"step span {sum(spans) / len(spans) / 1e3:.1f} us, kernels summed {sum(busy) / len(busy) / 1e3:.1f} us,"
          f" {sum(spans) / len(spans) / 1e3 / n_kernels:.2f} us per kernel")
    by = collections.defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    idle = 0.0
    for ks in same:
        prev_end = None
        exposed, gaps = exposed_times(ks)
        idle += gaps / 1e3
        last_exposed = exposed
        for (s, e, name, grid), x in zip(ks, exposed):
            rec = by[(name, grid)]
            rec[0] += 1
            rec[1] += (e - s) / 1e3
            rec[2] += 0.0 if prev_end is None else (s - prev_end) / 1e3
            rec[3] += x / 1e3
            prev_end = e
    # Exposed: the part of a kernel's time no kernel launched before it covers -- its share of the
    # step's span (with the idle gaps, the span itself). A kernel launched early by programmatic
    # dependent launch waits inside its own duration; its exposed time starts where the kernel
    # before it ended, so it holds the boundary's cost (drain, release, ramp) and its own work.
    print(f"exposed time by kernel (sums to the span with {idle / len(same):.1f} us idle a step)")
    print(f"{'exposed':>8} {'us/step':>8} {'mean us':>8} {'gap us':>7} {'n/step':>6}  kernel  grid")
    for (name, grid), (n, us, gap, x) in sorted(by.items(), key=lambda kv: -kv[1][3]):
        print(f"{x / len(same):8.1f} {us / len(same):8.1f} {us / n:8.2f} {gap / n:7.2f} {n / len(same):6.1f}  {name}  {grid}")
    # One replay in launch order (the last), for the sequence of kernels of a layer.
    ks = same[-1]
    print(f"\n# the last replay in order: start (us from the first), duration, exposed, kernel")
    for (s, e, name, grid), x in list(zip(ks, last_exposed))[:40]:
        print(f"{(s - ks[0][0]) / 1e3:8.2f} {(e - s) / 1e3:7.2f} {x / 1e3:7.2f}  {name}  {grid}")
    print()


def exposed_times(ks: list) -> tuple[list, int]:
    """Each kernel's exposed time (ns) in one replay, kernels in launch order: the part of its
    interval past every earlier kernel's end; and the replay's idle time (no kernel running)."""
    exposed, frontier, idle = [], ks[0][0], 0
    for s, e, _name, _grid in ks:
        idle += max(0, s - frontier)
        exposed.append(max(0, e - max(s, frontier)))
        frontier = max(frontier, e)
    return exposed, idle


def round_timeline(path: str) -> None:
    """Everything a traced stretch ran, in time order: each graph replay as one segment, each
    kernel or copy outside a graph as its own, with the idle time before it. A speculation round
    replays several graphs and runs kernels and copies between them; the idle gaps are where the
    device waits for the host (launch latency, read-backs, host-side planning)."""
    device, host = read_trace(path)
    if not device:
        print(f"{path}: empty")
        return
    recs = sorted((start, end, graph, corr, name[:70]) for start, end, graph, corr, _grid, name in device)
    segments = []  # [start, end, records, label, (graph, correlation) of a replay or None]
    for start, end, graph, corr, name in recs:
        if graph and segments and segments[-1][4] == (graph, corr):
            seg = segments[-1]
            seg[1], seg[2] = max(seg[1], end), seg[2] + 1
            continue
        segments.append([start, end, 1, f"graph {graph}: {name}" if graph else name, (graph, corr) if graph else None])
    # A whole generation's trace (--whole) begins with the prefill, which runs outside graphs:
    # start at the first graph replay.
    first = next((i for i, seg in enumerate(segments) if seg[4] is not None), 0)
    if first > 0:
        segments = segments[first:]
        print(f"(the {first} segments before the first graph replay, the prefill, left out)")
    t0, busy, idle, prev_end = segments[0][0], 0, 0, None
    print(f"## {os.path.basename(path)}: {len(recs)} records, {len(segments)} segments from the first graph replay")
    print(f"{'at us':>9} {'idle us':>8} {'span us':>8} {'n':>4}  segment (graph replay: its first kernel)")
    host.sort()
    host_i = 0
    for start, end, n, label, _ in segments:
        # Host API calls (over 2 us) that began before this segment, on the same clock, indented.
        while host_i < len(host) and host[host_i][0] < start:
            hs, he, hname = host[host_i]
            if hs >= t0:
                print(f"{(hs - t0) / 1e3:9.1f} {'host':>8} {(he - hs) / 1e3:8.1f} {'':4}    {hname}")
            host_i += 1
        gap = 0 if prev_end is None else max(0, start - prev_end)
        idle += gap
        busy += end - max(start, prev_end or start)
        prev_end = max(end, prev_end or end)
        print(f"{(start - t0) / 1e3:9.1f} {gap / 1e3:8.1f} {(end - start) / 1e3:8.1f} {n:4d}  {label}")
    print(f"total {(prev_end - t0) / 1e3:.1f} us: busy {busy / 1e3:.1f}, idle {idle / 1e3:.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shape", nargs="?")
    ap.add_argument("context", nargs="?", type=int)
    ap.add_argument("--phase", choices=("plain", "speculative"), default="speculative")
    ap.add_argument("--tree", default="4,16,16,16,16")
    ap.add_argument("--work", default="/tmp/longspec_bench")
    ap.add_argument("--model", help="a real model file instead of the shape's random checkpoint (with --draft)")
    ap.add_argument("--draft", help="the draft directory for --model")
    ap.add_argument("--whole", action="store_true",
                    help="with --trace: trace a whole generation without a callback (as the benchmark runs)")
    ap.add_argument("--digest", help="print the kernel table of a CSV written under ncu")
    ap.add_argument("--trace", action="store_true", help="run under the CUPTI tracer (LD_PRELOAD), not ncu")
    ap.add_argument("--timeline", help="print the step timeline of a CSV written by the tracer")
    ap.add_argument("--rounds", help="print a traced CSV in time order: graph replays, kernels and copies between them, idle gaps")
    a = ap.parse_args()
    if a.digest:
        digest(a.digest)
    elif a.timeline:
        timeline(a.timeline)
    elif a.rounds:
        round_timeline(a.rounds)
    else:
        run(a)
