"""Training a LongSpec draft against a frozen target (DESIGN.md section 3).

Stage 1: short packed sequences (length L) with Anchor-Offset Indices: s ~ U{0..4} anchor tokens
keep positions 0..s-1, every later token is shifted by one offset o ~ U[0, max(min(30000,
max_len - 1000) - L, 0)]; the same positions go to the target and to the draft. Stage 2: long
documents at natural positions, lower learning rate. Both stages use the noisy lag: per batch
p ~ U{1..4}, a draft query at index t cross-attends to target keys at indices <= t - p.
Loss: next-token cross-entropy of the draft's logits through the frozen LM head, against the data
(distill = 0, the default) or mixed with the cross-entropy against the target's own next-token
distribution at the same position (distill = a in (0, 1]: loss = (1 - a) * CE(data) + a * CE(target)).
The second term trains the draft towards what verification accepts: the target's choices. With
distill_temperature T the target's distribution is softmax(target logits / T): T < 1 sharpens it
towards the target's argmax, which is what greedy verification accepts (T = 1: the distribution
itself); the draft's side is not tempered (its ranking is what the tree uses).

Data parallel: run under torchrun (or any launcher that initialises torch.distributed before the
trainer is built) and every process holds the frozen target and a replica of the draft on its own
device, draws its own batches (random streams seeded by (seed, rank)) and averages gradients with
DistributedDataParallel; the global batch is world_size times the per-process one. Rank 0 writes
the log and the checkpoints; the trainer state holds every rank's random streams, so a resumed run
with the same world size draws the batches the uninterrupted run would have drawn.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..drafts import make_draft_config, write_draft
from .draft_torch import LongSpecDraft, cross_lag_mask
from .target import load_target, rope_of, target_forward


@dataclass
class TrainConfig:
    stage1_steps: int = 1000
    stage2_steps: int = 0
    seq_len: int = 1024            # stage-1 sequence length
    long_len: int = 8192           # stage-2 sequence length (cut from long documents)
    batch_size: int = 8            # stage-1 sequences per step
    long_batch_size: int = 1       # stage-2 sequences per step
    lr1: float = 5e-4
    lr2: float = 5e-6
    betas: tuple = (0.9, 0.95)
    weight_decay: float = 0.1
    warmup_frac: float = 0.1
    grad_clip: float = 1.0
    distill: float = 0.0           # weight of the target-distribution term of the loss (0 = data only)
    distill_temperature: float = 1.0  # the target's logits are divided by it in that term
    anchor_offsets: bool = True    # Anchor-Offset Indices in stage 1 (off = natural positions: the ablation)
    max_anchors: int = 4
    noisy_lag: bool = True
    max_lag: int = 4
    window: int = 512
    tree_shape: list = field(default_factory=lambda: [4, 16, 16, 16, 16])
    final_norm: bool = False
    mlp_intermediate_size: int = 0  # the draft MLP's width (0: the target's; with init_draft, the init's)
    init_std: float = 0.02
    seed: int = 0
    save_every: int = 500
    log_every: int = 10
    eval_every: int = 0            # held-out loss every this many steps and at the end (0: never)
    keep_checkpoints: bool = False  # also keep the draft of every save in out/checkpoints/step_NNNNNN
    device: str = "cuda" if torch.cuda.is_available() else "cpu"


def draw_anchor_offset(L: int, max_len: int, rng: random.Random, max_anchors: int = 4) -> tuple[int, int]:
    """(s, o): s ~ U{0..max_anchors} anchor tokens, offset o ~ U[0, max(min(30000, max_len - 1000) - L, 0)]."""
    s = rng.randint(0, max_anchors)
    o = rng.randint(0, max(min(30000, max_len - 1000) - L, 0))
    return s, o


def positions_with_offset(L: int, s: int, o: int) -> np.ndarray:
    """Tokens 0..s-1 keep positions 0..s-1; every later token moves by o."""
    pos = np.arange(L, dtype=np.int64)
    pos[s:] += o
    return pos


def anchor_offset_positions(L: int, max_len: int, rng: random.Random, max_anchors: int = 4) -> np.ndarray:
    """Positions for one stage-1 sequence of length L (DESIGN.md section 3)."""
    s, o = draw_anchor_offset(L, max_len, rng, max_anchors)
    return positions_with_offset(L, s, o)


def distributed() -> tuple[int, int]:
    """(rank, world size) of the initialised torch.distributed process group; (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def lr_at(step: int, total: int, peak: float, warmup_frac: float) -> float:
    """Linear warm-up over warmup_frac of the steps, then cosine decay to 0."""
    warm = max(1, int(total * warmup_frac))
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class DraftTrainer:
    """Owns the frozen target, the draft, the optimiser and the data; runs, checkpoints, resumes."""

    def __init__(self, target_path: str, out_dir: str, cfg: TrainConfig, init_draft: str | None = None):
        self.cfg = cfg
        self.out = out_dir
        self.rank, self.world = distributed()
        if self.rank == 0:
            os.makedirs(out_dir, exist_ok=True)
        self.device = torch.device(cfg.device)
        if self.world > 1 and self.device.type == "cuda":
            # One GPU per process: the launcher's LOCAL_RANK (torchrun sets it).
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", self.rank)))
            torch.cuda.set_device(self.device)
        self.amp = self.device.type == "cuda"
        dtype = torch.bfloat16 if self.amp else torch.float32
        self.target = load_target(target_path, device=str(self.device), dtype=dtype)
        self.target_path = target_path
        tcfg = self.target.config
        from ..drafts import target_config

        engine_cfg = target_config(target_path)
        self.max_len = int(engine_cfg["max_position"])
        self.vocab = int(engine_cfg["vocab_size"])
        inv_freq, scaling = rope_of(self.target)
        mlp_width = cfg.mlp_intermediate_size or None
        if init_draft:  # a continued draft keeps its MLP's width
            with open(os.path.join(init_draft, "config.json")) as f:
                init_width = json.load(f).get("mlp_intermediate_size")
            if mlp_width is not None and mlp_width != (init_width or engine_cfg["intermediate_size"]):
                raise ValueError(f"--mlp-intermediate {mlp_width} differs from the init draft's MLP width")
            mlp_width = init_width
        self.draft_config = make_draft_config(engine_cfg, window=cfg.window, tree_shape=cfg.tree_shape,
                                              final_norm=cfg.final_norm, attention_bias=True,
                                              mlp_intermediate_size=mlp_width)
        torch.manual_seed(cfg.seed)
        if init_draft:
            self.draft = LongSpecDraft.from_checkpoint(init_draft, inv_freq, scaling)
        else:
            self.draft = LongSpecDraft(self.draft_config, inv_freq, scaling)
            self.draft.init_weights(cfg.init_std)
        self.draft.to(self.device)
        # The module that trains: the draft, or its DDP wrapper (which averages gradients).
        self.model = self.draft
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.model = DistributedDataParallel(
                self.draft, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.embed = self.target.get_input_embeddings()
        self.lm_head = self.target.get_output_embeddings()
        decay = [p for n, p in self.draft.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in self.draft.named_parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}],
                                     lr=cfg.lr1, betas=tuple(cfg.betas), fused=self.device.type == "cuda")
        self.step = 0
        self._seed_streams(cfg.seed)
        self.log_path = os.path.join(out_dir, "train_log.jsonl")
        del tcfg

    def _seed_streams(self, *key: int) -> None:
        """The batch streams: seeded by the seed alone in one process (as before data parallelism),
        by (key..., rank) in each of several."""
        if self.world == 1 and len(key) == 1:
            self.rng = random.Random(key[0])
            self.np_rng = np.random.default_rng(key[0])
        else:
            self.rng = random.Random(":".join(str(k) for k in (*key, self.rank)))
            self.np_rng = np.random.default_rng([*key, self.rank])

    def _mean_over_ranks(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(t)
        return (t / self.world).tolist()

    def _collective_device(self) -> torch.device:
        import torch.distributed as dist

        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def _any_rank(self, flag: bool) -> bool:
        """True on every rank when it is true on one (a stop decision all ranks must share)."""
        if self.world == 1:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self._collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    # ------------------------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return self.cfg.stage1_steps + self.cfg.stage2_steps

    def stage_of(self, step: int) -> int:
        return 1 if step < self.cfg.stage1_steps else 2

    def loss_on(self, ids: torch.Tensor, positions: torch.Tensor, lag: int,
                metrics: dict | None = None) -> torch.Tensor:
        """The training loss of the draft on ids [B, T] at positions [B, T] (see the module doc).
        metrics, when given, receives 'ce' (data cross-entropy) and, when the target's logits were
        computed, 'agree' (fraction of positions where draft and target argmax coincide)."""
        a = float(self.cfg.distill)
        need_target = a > 0.0 or metrics is not None
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            if need_target:
                k, v, th = target_forward(self.target, ids, positions, with_hidden=True)
            else:
                k, v = target_forward(self.target, ids, positions)
            h0 = self.embed(ids)
            mask = cross_lag_mask(ids.shape[1], lag, ids.device)
            h = (self.model if self.draft.training else self.draft)(h0, positions, k, v, mask)
            logits = self.lm_head(h[:, :-1])
            if need_target:
                with torch.no_grad():
                    tlogits = self.lm_head(th[:, :-1])
        # One full-vocabulary log-softmax serves both terms.
        logp = torch.log_softmax(logits.float().reshape(-1, logits.shape[-1]), dim=-1)
        ce = F.nll_loss(logp, ids[:, 1:].reshape(-1))
        loss = ce
        if need_target:
            tlogits = tlogits.float().reshape(-1, tlogits.shape[-1])
            if a > 0.0:
                kd = -(torch.softmax(tlogits / float(self.cfg.distill_temperature), dim=-1) * logp).sum(-1).mean()
                loss = (1.0 - a) * ce + a * kd
            if metrics is not None:
                metrics["ce"] = float(ce.detach())
                metrics["agree"] = float((logp.detach().argmax(-1) == tlogits.argmax(-1)).float().mean())
        return loss

    def batch_stage1(self, packed: np.ndarray):
        idx = self.np_rng.integers(0, packed.shape[0], size=self.cfg.batch_size)
        ids = torch.as_tensor(packed[idx].astype(np.int64), device=self.device)
        L = ids.shape[1]
        if self.cfg.anchor_offsets:
            pos = np.stack([anchor_offset_positions(L, self.max_len, self.rng, self.cfg.max_anchors)
                            for _ in range(ids.shape[0])])
        else:
            pos = np.tile(np.arange(L), (ids.shape[0], 1))
        return ids, torch.as_tensor(pos, device=self.device)

    def batch_stage2(self, long_docs: list[np.ndarray]):
        L = min(self.cfg.long_len, self.max_len)
        rows = []
        for _ in range(self.cfg.long_batch_size):
            doc = long_docs[self.np_rng.integers(0, len(long_docs))]
            if len(doc) > L:
                start = int(self.np_rng.integers(0, len(doc) - L + 1))
                doc = doc[start:start + L]
            rows.append(doc.astype(np.int64))
        n = min(len(r) for r in rows)
        ids = torch.as_tensor(np.stack([r[:n] for r in rows]), device=self.device)
        pos = torch.arange(n, device=self.device)[None].expand(ids.shape[0], -1)
        return ids, pos

    def lag(self) -> int:
        return self.rng.randint(1, self.cfg.max_lag) if self.cfg.noisy_lag else 1

    def lr(self, step: int) -> float:
        c = self.cfg
        if step < c.stage1_steps:
            return lr_at(step, c.stage1_steps, c.lr1, c.warmup_frac)
        return lr_at(step - c.stage1_steps, max(1, c.stage2_steps), c.lr2, c.warmup_frac)

    # ------------------------------------------------------------------------------------
    def train(self, packed: np.ndarray | None, long_docs: list[np.ndarray] | None, progress: bool = True,
              time_limit_s: float | None = None, until_step: int | None = None,
              heldout: np.ndarray | None = None) -> dict:
        """Trains to the configured total (the schedule's length), or until `until_step` or the time
        limit: a segment of a longer run that a later call resumes; checkpoints at the end. With
        `heldout` sequences [n, L] and cfg.eval_every, logs their loss and top-1 agreement with the
        target (natural positions, lag 1) every eval_every steps and at the end: the curve that
        shows where more steps stop paying."""
        c = self.cfg
        stop = self.total_steps if until_step is None else min(self.total_steps, until_step)
        if c.stage1_steps > 0 and packed is None:
            raise ValueError("stage 1 needs packed sequences")
        if c.stage2_steps > 0 and not long_docs:
            raise ValueError("stage 2 needs long documents")
        bar = None
        if progress and self.rank == 0:
            try:
                from tqdm import tqdm

                bar = tqdm(total=self.total_steps, initial=self.step, desc="train-draft", dynamic_ncols=True)
            except ImportError:
                bar = None
        start = time.time()
        last = {}
        self.draft.train()
        while self.step < stop:
            if time_limit_s is not None and self._any_rank(time.time() - start > time_limit_s):
                break
            stage = self.stage_of(self.step)
            ids, pos = self.batch_stage1(packed) if stage == 1 else self.batch_stage2(long_docs)
            lag = self.lag()
            for g in self.opt.param_groups:
                g["lr"] = self.lr(self.step)
            log_now = (self.step + 1) % c.log_every == 0 or self.step + 1 == self.total_steps
            metrics = {} if log_now else None
            loss = self.loss_on(ids, pos, lag, metrics)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(self.draft.parameters(), c.grad_clip)
            self.opt.step()
            self.step += 1
            if log_now:
                # Loss and metrics averaged over the ranks (each saw its own batch); tokens of the
                # global batch.
                keys = sorted(metrics or {})
                means = self._mean_over_ranks([float(loss.detach())] + [metrics[k] for k in keys])
                last = {"step": self.step, "stage": stage, "loss": means[0], "lag": lag,
                        "lr": self.opt.param_groups[0]["lr"], "grad_norm": float(gnorm),
                        "tokens": int(ids.numel()) * self.world, "elapsed_s": round(time.time() - start, 2)}
                if self.world > 1:
                    last["world_size"] = self.world
                last.update({k: round(v, 4) for k, v in zip(keys, means[1:])})
                self._append_log(last)
                if bar is not None:
                    bar.set_postfix(loss=f"{last['loss']:.3f}", stage=stage)
            if bar is not None:
                bar.update(1)
            if heldout is not None and c.eval_every and self.step % c.eval_every == 0:
                self.log_heldout(heldout)
            if c.save_every and self.step % c.save_every == 0:
                self.save()
        if bar is not None:
            bar.close()
        if heldout is not None and c.eval_every and self.step % c.eval_every != 0:
            self.log_heldout(heldout)
        self.save()
        return last

    def _append_log(self, row: dict) -> None:
        """One JSON line in train_log.jsonl, written by rank 0 only."""
        if self.rank == 0:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(row) + "\n")

    def log_heldout(self, heldout: np.ndarray) -> None:
        """One point of the held-out curve, evaluated and logged by rank 0 (the others go on: the
        evaluation has no collective)."""
        if self.rank != 0:
            return
        m: dict = {}
        t0 = time.time()
        ce = self.evaluate(heldout, metrics=m)
        self._append_log({"step": self.step, "heldout_ce": round(ce, 4), "heldout_agree": round(m["agree"], 4),
                          "heldout_tokens": int(heldout.size), "eval_s": round(time.time() - t0, 2)})

    @torch.no_grad()
    def evaluate(self, sequences: np.ndarray, positions: str = "natural", lag: int = 1, batch: int = 4,
                 metrics: dict | None = None) -> float:
        """Mean data cross-entropy on held-out sequences [n, L] (positions 'natural' or 'offset:<o>');
        metrics, when given, receives the mean 'agree' (top-1 agreement with the target)."""
        self.draft.eval()
        losses = []
        agree = []
        for i in range(0, len(sequences), batch):
            ids = torch.as_tensor(sequences[i:i + batch].astype(np.int64), device=self.device)
            L = ids.shape[1]
            pos = torch.arange(L, device=self.device)[None].expand(ids.shape[0], -1).clone()
            if positions.startswith("offset:"):
                pos += int(positions.split(":")[1])
            m = {}
            self.loss_on(ids, pos, lag, m)
            losses.append(m["ce"] * ids.shape[0])
            agree.append(m["agree"] * ids.shape[0])
        self.draft.train()
        if metrics is not None:
            metrics["agree"] = sum(agree) / len(sequences)
        return sum(losses) / len(sequences)

    # ------------------------------------------------------------------------------------
    def save(self, final_dir: str | None = None) -> str:
        """Writes the draft checkpoint (bf16) under out/draft and the trainer state for resuming
        (rank 0 writes; with several ranks every rank must call it: their random streams are
        gathered)."""
        path = final_dir or os.path.join(self.out, "draft")
        streams = {"rng": self.rng.getstate(), "np_rng": self.np_rng.bit_generator.state,
                   "torch_rng": torch.get_rng_state()}
        if self.world > 1:
            import torch.distributed as dist

            gathered = [None] * self.world
            dist.all_gather_object(gathered, streams)
            if self.rank != 0:
                return path
        else:
            gathered = [streams]
        cfg = dict(self.draft_config)
        cfg["training"] = {"steps": self.step, "config": {k: (list(v) if isinstance(v, tuple) else v)
                                                          for k, v in asdict(self.cfg).items()},
                           "target": os.path.basename(self.target_path)}
        tensors = self.draft.export_tensors()
        write_draft(path, cfg, tensors, dtype="BF16")
        if self.cfg.keep_checkpoints and final_dir is None:
            write_draft(os.path.join(self.out, "checkpoints", f"step_{self.step:06d}"), cfg, tensors, dtype="BF16")
        # "ranks": every rank's random streams, in rank order (their count is the world size).
        state = {"step": self.step, "draft": self.draft.state_dict(), "opt": self.opt.state_dict(), "ranks": gathered}
        tmp = os.path.join(self.out, "trainer_state.pt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, os.path.join(self.out, "trainer_state.pt"))
        return path

    def try_resume(self) -> bool:
        path = os.path.join(self.out, "trainer_state.pt")
        if not os.path.isfile(path):
            return False
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.draft.load_state_dict(state["draft"])
        self.opt.load_state_dict(state["opt"])
        self.step = int(state["step"])
        ranks = state.get("ranks") or [state]
        if len(ranks) == self.world:
            mine = ranks[self.rank]
            self.rng.setstate(mine["rng"])
            self.np_rng.bit_generator.state = mine["np_rng"]
            torch.set_rng_state(mine["torch_rng"])
        else:
            # Saved by another number of processes: fresh streams, keyed by the step as well (the
            # batches differ from those of an uninterrupted run; the log says so).
            self._seed_streams(self.cfg.seed, self.step)
            self._append_log({"resumed_at": self.step, "saved_world_size": len(ranks), "world_size": self.world,
                              "note": "batch streams re-seeded"})
        return True
