#!/usr/bin/env python3
"""Writes tests/data/dequant/<TYPE>.bin: random ggml blocks plus the fp32 values that the
`gguf` package's own numpy dequantiser (an implementation independent of ours) gives for them.
test_gguf_dequant.cc requires our GgmlToF32 to reproduce these bit for bit.

Fixture layout (little-endian):
  char[4] "LSDQ" | u32 ggml type id | u32 element count | u32 byte count | bytes | f32 values

Usage: python3 tests/data/make_dequant_fixtures.py   (deterministic: the seed is fixed)
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import dequantize

OUT_DIR = Path(__file__).resolve().parent / "dequant"
SEED = 20261126

# type -> (blocks to draw, byte offsets of the fp16 fields inside one block). Those fields
# get finite fp16 values (subnormals included); every other byte is uniformly random.
TYPES: dict[T, tuple[int, tuple[int, ...]]] = {
    T.Q4_0: (48, (0,)),
    T.Q4_1: (48, (0, 2)),
    T.Q5_0: (48, (0,)),
    T.Q5_1: (48, (0, 2)),
    T.Q8_0: (48, (0,)),
    T.Q2_K: (8, (80, 82)),
    T.Q3_K: (8, (108,)),
    T.Q4_K: (8, (0, 2)),
    T.Q5_K: (8, (0, 2)),
    T.Q6_K: (8, (208,)),
}
SCALAR_ELEMS = 512  # F32 / F16 / BF16


def finite_bits(rng: np.random.Generator, n: int, exp_mask: int, dtype) -> np.ndarray:
    """Uniform random bit patterns of a float type, redrawn until none is inf or NaN."""
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(dtype)
    while True:
        bad = (bits & exp_mask) == exp_mask
        if not bad.any():
            return bits
        bits[bad] = rng.integers(0, 1 << 16, size=int(bad.sum()), dtype=np.uint32).astype(dtype)


def quantised_blocks(rng: np.random.Generator, qtype: T) -> np.ndarray:
    n_blocks, fp16_offsets = TYPES[qtype]
    _, block_bytes = GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for off in fp16_offsets:
        scale = finite_bits(rng, n_blocks, 0x7C00, np.uint16)
        blocks[:, off:off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(-1)


def scalar_bytes(rng: np.random.Generator, qtype: T) -> np.ndarray:
    if qtype == T.F32:
        vals = rng.standard_normal(SCALAR_ELEMS).astype(np.float32) * np.float32(1e3)
        return vals.view(np.uint8)
    # F16 and BF16 both have a 16-bit pattern; their exponent fields differ.
    exp_mask = 0x7C00 if qtype == T.F16 else 0x7F80
    return finite_bits(rng, SCALAR_ELEMS, exp_mask, np.uint16).view(np.uint8)


def write_fixture(qtype: T, data: np.ndarray) -> int:
    values = np.asarray(dequantize(data, qtype), dtype=np.float32).reshape(-1)
    assert np.isfinite(values).all(), qtype.name
    payload = b"LSDQ" + struct.pack("<III", int(qtype), values.size, data.size)
    payload += data.tobytes() + values.astype("<f4").tobytes()
    (OUT_DIR / f"{qtype.name}.bin").write_bytes(payload)
    return len(payload)


def main() -> None:
    rng = np.random.default_rng(SEED)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    total = 0
    for qtype in (T.F32, T.F16, T.BF16):
        total += write_fixture(qtype, scalar_bytes(rng, qtype))
    for qtype in TYPES:
        total += write_fixture(qtype, quantised_blocks(rng, qtype))
    print(f"wrote {3 + len(TYPES)} fixtures, {total} bytes, to {OUT_DIR}")


if __name__ == "__main__":
    main()
