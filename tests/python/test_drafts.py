"""Draft checkpoints are written by the ``safetensors`` library, not by hand: the files are the
library's own bytes, and the engine's reader gets the values back."""
from __future__ import annotations

import numpy as np
import pytest

from longspec import _C
from longspec.drafts import save_safetensors


def _tensors():
    rng = np.random.default_rng(0)
    return {"self_attn.q_proj.weight": rng.standard_normal((4, 8)).astype(np.float32),
            "mlp_norm.weight": np.ones(8, dtype=np.float32),
            "b": (rng.standard_normal(5) * 1e3).astype(np.float64)}  # converted to F32 on the way


def test_f32_file_is_the_safetensors_librarys_own_bytes(tmp_path):
    from safetensors.numpy import save

    tensors = _tensors()
    path = tmp_path / "m.safetensors"
    save_safetensors(path, tensors, metadata={"format": "longspec-draft"})
    want = save({k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()},
                metadata={"format": "longspec-draft"})
    assert path.read_bytes() == want
    for name, value in tensors.items():
        np.testing.assert_array_equal(_C._read_tensor_f32(str(path), name), value.astype(np.float32))


def test_bf16_rounds_to_nearest_even_and_reads_back(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    tensors = _tensors()
    path = tmp_path / "m.safetensors"
    save_safetensors(path, tensors, dtype="BF16")
    loaded = load_file(str(path))
    for name, value in tensors.items():
        assert loaded[name].dtype == torch.bfloat16
        want = torch.from_numpy(value.astype(np.float32)).to(torch.bfloat16).float().numpy()
        np.testing.assert_array_equal(_C._read_tensor_f32(str(path), name), want)
    # 1 + 2^-8 lies halfway between two bf16 values; nearest-even keeps 1.0, 1 + 3*2^-8 goes up.
    save_safetensors(path, {"t": np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8], dtype=np.float32)}, dtype="BF16")
    np.testing.assert_array_equal(_C._read_tensor_f32(str(path), "t"), [1.0, 1 + 2 ** -6])


def test_unknown_dtype_is_refused(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        save_safetensors(tmp_path / "m.safetensors", _tensors(), dtype="F16")
