#!/usr/bin/env python3
"""Held-out loss of drafts on long documents at natural positions (the start of the long-data
stage): python3 bench/train/gpu_eval_loss.py TARGET DATA_DIR DRAFT [DRAFT ...] > json
(DEVICE=cpu to run without a GPU; results are keyed by the draft's path)."""
import json
import os
import sys

import numpy as np


def main() -> int:
    target, data, drafts = sys.argv[1], sys.argv[2], sys.argv[3:]
    from longspec.training.cli import _load_npz_list
    from longspec.training.train import DraftTrainer, TrainConfig

    docs = _load_npz_list(os.path.join(data, "heldout_long.npz"))
    results = {}
    for L in (1024, 4096, 8192):
        seqs = np.stack([d[:L] for d in docs if len(d) >= L])
        for draft in drafts:
            device = os.environ.get("DEVICE", "cuda")
            tr = DraftTrainer(target, "/tmp/eval_scratch", TrainConfig(stage1_steps=0, device=device), init_draft=draft)
            results.setdefault(draft, {})[L] = {
                "loss_all_positions": tr.evaluate(seqs, lag=1, batch=2), "sequences": len(seqs)}
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
