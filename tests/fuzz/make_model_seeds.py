#!/usr/bin/env python3
"""Writes seed inputs for the checkpoint-reader fuzz targets (mk/fuzz_model.mk): small valid
.safetensors files (every float dtype, 0-d to 3-d tensors, an empty tensor, metadata, padding) and one
config.json per supported architecture variant. Standard library only.

usage: make_model_seeds.py SAFETENSORS_CORPUS_DIR CONFIG_CORPUS_DIR"""
import json
import os
import struct
import sys


def safetensors(tensors, metadata=None, pad=8):
    """tensors: list of (name, dtype, shape, element_size); data filled with a byte pattern."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, es in tensors:
        n = es
        for s in shape:
            n *= s
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        blobs.append(bytes((off + i) & 0xFF for i in range(n)))
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % pad)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


ST_SEEDS = {
    "one_f32": safetensors([("w", "F32", [3, 4], 4)]),
    "mixed": safetensors([("a.weight", "BF16", [2, 5], 2), ("b.bias", "F16", [7], 2), ("s", "F32", [], 4),
                          ("ids", "I64", [3], 8)], metadata={"format": "pt"}),
    "empty_tensor": safetensors([("e", "F32", [0, 4], 4), ("x", "F16", [1, 1, 3], 2)]),
    "no_tensors": safetensors([], metadata={}),
}

BASE = {"vocab_size": 97, "hidden_size": 16, "num_attention_heads": 4, "num_hidden_layers": 2,
        "intermediate_size": 40, "max_position_embeddings": 64}
CONFIGS = {
    "gpt2": {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 97, "n_embd": 16,
             "n_head": 4, "n_layer": 2, "n_positions": 64, "n_inner": None, "activation_function": "gelu_new",
             "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True},
    "neox": dict(BASE, model_type="gpt_neox", rotary_pct=0.25, rotary_emb_base=10000, use_parallel_residual=True,
                 hidden_act="gelu", layer_norm_eps=1e-5, tie_word_embeddings=False),
    "llama3": dict(BASE, model_type="llama", num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=500000.0,
                   hidden_act="silu", attention_bias=False, tie_word_embeddings=False,
                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
    "llama_v5": dict(BASE, model_type="llama", num_key_value_heads=4, head_dim=8, rms_norm_eps=1e-6,
                     rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, tie_word_embeddings=True),
    "mistral": dict(BASE, model_type="mistral", num_key_value_heads=1, sliding_window=None, rope_theta=1e6),
    "qwen2": dict(BASE, architectures=["Qwen2ForCausalLM"], num_key_value_heads=2, use_sliding_window=False,
                  sliding_window=32, max_window_layers=1, tie_word_embeddings=True),
}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    st_dir, cfg_dir = sys.argv[1:]
    os.makedirs(st_dir, exist_ok=True)
    os.makedirs(cfg_dir, exist_ok=True)
    for name, blob in ST_SEEDS.items():
        with open(os.path.join(st_dir, "seed_" + name), "wb") as f:
            f.write(blob)
    for name, cfg in CONFIGS.items():
        with open(os.path.join(cfg_dir, "seed_" + name), "w") as f:
            json.dump(cfg, f, indent=1)


if __name__ == "__main__":
    main()
