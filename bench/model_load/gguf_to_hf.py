"""Writes the Hugging Face twin of a llama-architecture GGUF: config.json from its metadata and the weights
dequantized (gguf.quants.dequantize), q/k rows put back from llama.cpp's interleaved rotary order, stored as
BF16 (or F32) safetensors under Hugging Face names. Used by bench/model_load/run.sh to compare loading the
same model from both formats.

usage: python3 gguf_to_hf.py MODEL.gguf OUT_DIR [BF16|F32]"""

import json
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests"))
from reference import safetensors_io as st  # noqa: E402


def field(r, key, default=None):
    f = r.fields.get(key)
    return default if f is None else f.contents()


def unpermute(w, heads):
    """Interleaved rotary pairs (GGUF) -> half-split rows (HF), per head."""
    rows = w.shape[0]
    r = rows // heads
    rest = w.shape[1:]
    return w.reshape(heads, r // 2, 2, *rest).swapaxes(1, 2).reshape(rows, *rest)


def main(src, out, dtype="BF16"):
    r = GGUFReader(src)
    arch = field(r, "general.architecture")
    if arch != "llama":
        sys.exit("gguf_to_hf: only llama-architecture files (%s is %s)" % (src, arch))
    k = lambda s, d=None: field(r, "llama." + s, d)  # noqa: E731
    heads, kv = int(k("attention.head_count")), int(k("attention.head_count_kv", k("attention.head_count")))
    names = {t.name: t for t in r.tensors}
    vocab = int(names["token_embd.weight"].shape[1])
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "num_hidden_layers": int(k("block_count")), "hidden_size": int(k("embedding_length")),
        "intermediate_size": int(k("feed_forward_length")), "num_attention_heads": heads,
        "num_key_value_heads": kv, "max_position_embeddings": int(k("context_length")),
        "rms_norm_eps": float(k("attention.layer_norm_rms_epsilon")), "rope_theta": float(k("rope.freq_base", 1e4)),
        "vocab_size": vocab, "tie_word_embeddings": "output.weight" not in names, "hidden_act": "silu",
    }
    hf = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
          "output.weight": "lm_head.weight"}
    per = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
           "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
           "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    arrays = {}
    for t in r.tensors:
        if t.name in hf:
            name = hf[t.name]
        else:
            _, layer, part, kind = t.name.split(".")
            name = "model.layers.%s.%s.%s" % (layer, per[part], kind)
        a = dequantize(t.data, t.tensor_type).reshape([int(x) for x in reversed(t.shape)])
        if t.name.endswith(("attn_q.weight", "attn_q.bias")):
            a = unpermute(a, heads)
        elif t.name.endswith(("attn_k.weight", "attn_k.bias")):
            a = unpermute(a, kv)
        arrays[name] = a.astype(np.float32)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    st.write_arrays(os.path.join(out, "model.safetensors"), arrays, dtype)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
