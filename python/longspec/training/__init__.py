"""Draft training (PyTorch): the LongSpec draft layer, the frozen target, Anchor-Offset Indices,
noisy lag, and the two-stage recipe of DESIGN.md section 3."""
