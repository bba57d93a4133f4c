"""Writes the fuzzers' committed seed corpus (tests/fuzz/corpus/{gguf,safetensors,json}/).

Deterministic and small (a few KB): each seed is a valid file of the kind the parser reads, so
that mutation starts from inputs that reach deep into the parser, plus a few near-misses.
Run from the repository root: python3 tests/fuzz/make_seeds.py
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(kind: str, name: str, data: bytes) -> None:
    os.makedirs(os.path.join(OUT, kind), exist_ok=True)
    with open(os.path.join(OUT, kind, name), "wb") as f:
        f.write(data)


def gguf_seeds() -> None:
    import gguf

    rng = np.random.default_rng(0)
    path = os.path.join(OUT, "gguf", "tiny_llama.gguf")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_context_length(64)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", "b", "c", "d"])
    w.add_array("test.nested_ints", [1, 2, 3])
    w.add_bool("test.flag", True)
    w.add_tensor("token_embd.weight", rng.standard_normal((4, 8)).astype(np.float32))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(8, dtype=np.float16))
    # One Q8_0 block (fp16 scale + 32 int8) as raw bytes: 34 bytes for 32 elements.
    q8 = np.frombuffer(struct.pack("<e", 0.5) + bytes(range(32)), dtype=np.uint8)
    w.add_tensor("blk.0.ffn_down.weight", q8.reshape(1, 34), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def safetensors_seeds() -> None:
    from safetensors.numpy import save

    rng = np.random.default_rng(0)
    write("safetensors", "f32_two.safetensors",
          save({"a": rng.standard_normal((2, 3)).astype(np.float32), "b": np.arange(4, dtype=np.float32)},
               metadata={"format": "pt"}))
    write("safetensors", "f16_i32.safetensors",
          save({"h": np.ones((3,), dtype=np.float16), "i": np.arange(5, dtype=np.int32)}))
    write("safetensors", "empty_tensor.safetensors", save({"z": np.zeros((0, 4), dtype=np.float32)}))
    header = b'{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}'
    write("safetensors", "bf16_hand.safetensors", struct.pack("<Q", len(header)) + header + b"\x80\x3f\x00\x40")


def json_seeds() -> None:
    hf = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 256, "hidden_size": 64,
          "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
          "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
          "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": [2, 3],
          "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 8192}}
    write("json", "hf_llama_config.json", json.dumps(hf, indent=1).encode())
    qwen = dict(hf, model_type="qwen2", tie_word_embeddings=False, eos_token_id=2,
                rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768})
    write("json", "hf_qwen2_config.json", json.dumps(qwen).encode())
    draft = {"format": "longspec-draft", "format_version": 1,
             "target": {"architecture": "llama", "hidden_size": 64, "num_heads": 4, "num_kv_heads": 2,
                        "head_dim": 16, "intermediate_size": 128, "vocab_size": 256, "rms_norm_eps": 1e-5,
                        "rope_theta": 10000.0, "max_position": 2048},
             "window": 512, "tree_shape": [4, 16, 16], "final_norm": False, "attention_bias": True}
    write("json", "draft_config.json", json.dumps(draft, indent=2).encode())
    write("json", "draft_config_narrow_mlp.json", json.dumps(dict(draft, mlp_intermediate_size=48)).encode())
    index = {"metadata": {"total_size": 1024}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                                               "b": "model-00002-of-00002.safetensors"}}
    write("json", "safetensors_index.json", json.dumps(index).encode())
    write("json", "escapes.json", '{"s": "\\u00e9\\ud83d\\ude00\\n\\"", "u": "\u20ac", "n": [-0.0, 1e-7, 1E+300]}'
          .encode())
    write("json", "nested.json", b"[[[[{\"a\":[null,true,false,{}]}]]]]")


if __name__ == "__main__":
    gguf_seeds()
    safetensors_seeds()
    json_seeds()
    for kind in sorted(os.listdir(OUT)):
        files = sorted(os.listdir(os.path.join(OUT, kind)))
        print(kind, len(files), "seeds,", sum(os.path.getsize(os.path.join(OUT, kind, f)) for f in files), "bytes")
