"""Test utility: a Hugging Face model directory (as `logitlens synth` writes it) to a GGUF file, and a GGUF
file back to a "dequantized Hugging Face directory" for the float64 reference.

Written from the documented conventions of llama.cpp's HF -> GGUF conversion (convert_hf_to_gguf.py and
gguf-py's constants), with the `gguf` Python package's writer, reader and block quantizers. Nothing here
comes from the engine.

HF -> GGUF (`convert`)
  - general.architecture: `llama` for llama and mistral, `qwen2`, `gpt2`, `gptneox`; the {arch}.* keys
    block_count, context_length, embedding_length, feed_forward_length, attention.head_count(_kv),
    attention.key_length / value_length (only when head_dim != d / heads), attention.layer_norm(_rms)_epsilon,
    rope.freq_base, rope.dimension_count, gptneox.use_parallel_residual, vocab_size.
  - Tensor names token_embd, position_embd, output_norm, output (absent when tied), blk.N.attn_norm,
    attn_q/k/v (+bias), attn_qkv (+bias), attn_output (+bias), ffn_norm, ffn_gate/up/down (+bias).
  - Layout changes of the conversion:
      GPT-2's Conv1D weights [in, out] are transposed to nn.Linear order [out, in];
      GPT-NeoX's fused query_key_value, per head [q_h k_h v_h], is reordered to [q | k | v] (weight and
      bias);
      llama-architecture q and k rows (weights AND biases) are permuted into llama.cpp's interleaved rotary
      order: W.reshape(n_head, 2, rows // n_head // 2, ...).swapaxes(1, 2), with n_head = the kv heads for
      k. qwen2 and the other architectures are not permuted.
  - Llama 3 rope scaling becomes a `rope_freqs.weight` F32 tensor of per-frequency divisors computed as
    llama.cpp does (frequencies in float32; 1 above the high-frequency wavelength, `factor` below the low
    one, 1 / ((1 - smooth) / factor + smooth) between). llama.cpp reads the original context from a
    top-level `original_max_position_embeddings` (default 8192); here it is the rope scaling's own value
    (the synthetic models use 32), and it is also written as {arch}.rope.scaling.original_context_length so
    that a reader can tell which scaling the divisors came from.
  - Mistral's `sliding_window`: llama.cpp's llama conversion drops it; here it is written as
    `llama.attention.sliding_window` unless sliding_window_key=False (which converts the model llama.cpp
    would see: full attention).
  - Types: each 2-D tensor is stored in the requested type (one type, or a per-name mapping); norms, biases
    and rope_freqs are F32 (as llama.cpp keeps 1-D tensors). F32, F16 and BF16 apply to any shape. A block
    type applies when the row length (ne[0], the input dimension) is a multiple of its block size;
    otherwise the tensor falls back to F16 (what convert_hf_to_gguf does when Q8_0 does not fit a row).
    gguf 0.19 quantizes F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 itself; it only dequantizes the K-quants,
    so Q2_K..Q6_K are encoded by the simple quantizers below (min/max scales per sub-block, not llama.cpp's
    optimized search). Every encoded block is decoded again with gguf.quants.dequantize and checked
    against the intended values, so a packing mistake cannot pass silently.
  - Optionally a byte-level BPE tokenizer (tokenizer.ggml.model "gpt2") from tokenizer.json.

GGUF -> dequantized HF directory (`dequantized_hf_dir`)
  Reads the GGUF back with gguf.GGUFReader, dequantizes every tensor with gguf.quants.dequantize to
  float32, and undoes each layout change independently of the forward direction (transposes back, [q|k|v]
  to per-head order, the interleaved rotary permutation back to half-split). Writes config.json (the
  original one, or one built from the metadata for a GGUF that did not come from here) and one F32
  model.safetensors. This directory is what the float64 reference reads: the reference sees exactly the
  weights the GGUF holds.
"""

import json
import math
import os
import re

import numpy as np

from reference import safetensors_io as st

try:
    import gguf
    from gguf import GGMLQuantizationType as QT
except ImportError:  # pragma: no cover - the tests skip with a reason
    gguf = None
    QT = None

QK_K = 256

# ---- per-architecture names --------------------------------------------------------------------------

# kinds of layout change: plain, conv1d (transpose), neox_qkv (per-head -> [q|k|v]), perm_q / perm_k
# (interleaved rotary order, llama architecture only)
_LLAMA_LAYER = [
    ("input_layernorm.weight", "attn_norm.weight", "plain"),
    ("self_attn.q_proj.weight", "attn_q.weight", "perm_q"),
    ("self_attn.k_proj.weight", "attn_k.weight", "perm_k"),
    ("self_attn.v_proj.weight", "attn_v.weight", "plain"),
    ("self_attn.q_proj.bias", "attn_q.bias", "perm_q"),
    ("self_attn.k_proj.bias", "attn_k.bias", "perm_k"),
    ("self_attn.v_proj.bias", "attn_v.bias", "plain"),
    ("self_attn.o_proj.weight", "attn_output.weight", "plain"),
    ("self_attn.o_proj.bias", "attn_output.bias", "plain"),
    ("post_attention_layernorm.weight", "ffn_norm.weight", "plain"),
    ("mlp.gate_proj.weight", "ffn_gate.weight", "plain"),
    ("mlp.up_proj.weight", "ffn_up.weight", "plain"),
    ("mlp.down_proj.weight", "ffn_down.weight", "plain"),
    ("mlp.gate_proj.bias", "ffn_gate.bias", "plain"),
    ("mlp.up_proj.bias", "ffn_up.bias", "plain"),
    ("mlp.down_proj.bias", "ffn_down.bias", "plain"),
]
_LLAMA_GLOBAL = [
    ("model.embed_tokens.weight", "token_embd.weight", "plain"),
    ("model.norm.weight", "output_norm.weight", "plain"),
    ("lm_head.weight", "output.weight", "plain"),
]
_GPT2_LAYER = [
    ("ln_1.weight", "attn_norm.weight", "plain"),
    ("ln_1.bias", "attn_norm.bias", "plain"),
    ("attn.c_attn.weight", "attn_qkv.weight", "conv1d"),
    ("attn.c_attn.bias", "attn_qkv.bias", "plain"),
    ("attn.c_proj.weight", "attn_output.weight", "conv1d"),
    ("attn.c_proj.bias", "attn_output.bias", "plain"),
    ("ln_2.weight", "ffn_norm.weight", "plain"),
    ("ln_2.bias", "ffn_norm.bias", "plain"),
    ("mlp.c_fc.weight", "ffn_up.weight", "conv1d"),
    ("mlp.c_fc.bias", "ffn_up.bias", "plain"),
    ("mlp.c_proj.weight", "ffn_down.weight", "conv1d"),
    ("mlp.c_proj.bias", "ffn_down.bias", "plain"),
]
_GPT2_GLOBAL = [
    ("wte.weight", "token_embd.weight", "plain"),
    ("wpe.weight", "position_embd.weight", "plain"),
    ("ln_f.weight", "output_norm.weight", "plain"),
    ("ln_f.bias", "output_norm.bias", "plain"),
    ("lm_head.weight", "output.weight", "plain"),
]
_NEOX_LAYER = [
    ("input_layernorm.weight", "attn_norm.weight", "plain"),
    ("input_layernorm.bias", "attn_norm.bias", "plain"),
    ("attention.query_key_value.weight", "attn_qkv.weight", "neox_qkv"),
    ("attention.query_key_value.bias", "attn_qkv.bias", "neox_qkv"),
    ("attention.dense.weight", "attn_output.weight", "plain"),
    ("attention.dense.bias", "attn_output.bias", "plain"),
    ("post_attention_layernorm.weight", "ffn_norm.weight", "plain"),
    ("post_attention_layernorm.bias", "ffn_norm.bias", "plain"),
    ("mlp.dense_h_to_4h.weight", "ffn_up.weight", "plain"),
    ("mlp.dense_h_to_4h.bias", "ffn_up.bias", "plain"),
    ("mlp.dense_4h_to_h.weight", "ffn_down.weight", "plain"),
    ("mlp.dense_4h_to_h.bias", "ffn_down.bias", "plain"),
]
_NEOX_GLOBAL = [
    ("gpt_neox.embed_in.weight", "token_embd.weight", "plain"),
    ("gpt_neox.final_layer_norm.weight", "output_norm.weight", "plain"),
    ("gpt_neox.final_layer_norm.bias", "output_norm.bias", "plain"),
    ("embed_out.weight", "output.weight", "plain"),
]
# HF buffers that are not weights (causal masks, cached rotary frequencies)
_SKIP = re.compile(r"(\.attn\.bias|\.attn\.masked_bias|\.attention\.bias|\.attention\.masked_bias|"
                   r"rotary_emb\.inv_freq)$")

GGUF_ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "gpt2": "gpt2", "gpt_neox": "gptneox"}


def _tables(hf_arch):
    if hf_arch in ("llama", "mistral", "qwen2"):
        return "model.layers.%d.", _LLAMA_LAYER, _LLAMA_GLOBAL
    if hf_arch == "gpt2":
        return "h.%d.", _GPT2_LAYER, _GPT2_GLOBAL
    if hf_arch == "gpt_neox":
        return "gpt_neox.layers.%d.", _NEOX_LAYER, _NEOX_GLOBAL
    raise ValueError("architecture %r has no GGUF mapping here" % hf_arch)


def name_map(hf_arch, n_layers, permuted=None):
    """[(hf name, gguf name, kind)] for every tensor the architecture may have. The q/k kinds perm_q and
    perm_k are kept for the llama architecture (or for any when permuted=True)."""
    prefix, layer, glob = _tables(hf_arch)
    out = list(glob)
    for i in range(n_layers):
        out += [(prefix % i + h, "blk.%d.%s" % (i, g), k) for h, g, k in layer]
    if not permuted and GGUF_ARCH[hf_arch] != "llama":
        out = [(h, g, "plain" if k in ("perm_q", "perm_k") else k) for h, g, k in out]
    return out


# ---- layout changes and their inverses ---------------------------------------------------------------

def permute_rotary(w, n_head):
    """HF half-split rotary rows -> llama.cpp's interleaved pairs (weights [rows, cols] or biases [rows])."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_rotary(w, n_head):
    """Inverse of permute_rotary: stored row 2i + j of a head is HF row j * R/2 + i."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def neox_qkv_to_gguf(w, n_head):
    """Per head [q_h k_h v_h] rows -> [q | k | v] rows."""
    hd = w.shape[0] // n_head // 3
    return w.reshape(n_head, 3, hd, *w.shape[1:]).swapaxes(0, 1).reshape(w.shape)


def neox_qkv_from_gguf(w, n_head):
    hd = w.shape[0] // n_head // 3
    return w.reshape(3, n_head, hd, *w.shape[1:]).swapaxes(0, 1).reshape(w.shape)


# ---- K-quant encoders (gguf 0.19 only decodes these) -------------------------------------------------

def _f16(x):
    """Rounds to float16; returns (f16 array, its float32 value)."""
    h = np.asarray(x, dtype=np.float32).astype(np.float16)
    return h, h.astype(np.float32)


def _div(a, b):
    """a / b, 0 where b == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / np.where(b != 0, b, 1), 0).astype(np.float32)


def _signed_subblocks(x, nsub, qmin, smax):
    """Symmetric sub-block scales: the value of largest magnitude maps to qmin (negative). Returns d (f16
    bits and value), integer scales in [-smax-1, smax] and q."""
    nb = x.shape[0]
    xs = x.reshape(nb, nsub, -1)
    idx = np.abs(xs).argmax(-1)
    vmax = np.take_along_axis(xs, idx[..., None], -1)[..., 0]
    s = vmax / np.float32(qmin)
    dh, d = _f16(np.abs(s).max(-1) / np.float32(smax))
    sc = np.clip(np.round(_div(s, d[:, None])), -smax - 1, smax).astype(np.int32)
    dl = d[:, None] * sc.astype(np.float32)
    q = np.clip(np.round(_div(xs, dl[..., None])), qmin, -qmin - 1).astype(np.int32)
    return dh, sc, q, (dl[..., None] * q.astype(np.float32)).reshape(nb, -1)


def _minmax_subblocks(x, nsub, qmax, smax):
    """Asymmetric sub-block scales y = d*sc*q - dmin*m with q in [0, qmax], sc and m in [0, smax]."""
    nb = x.shape[0]
    xs = x.reshape(nb, nsub, -1)
    lo = np.minimum(xs.min(-1), 0)
    scale = (xs.max(-1) - lo) / np.float32(qmax)
    off = -lo
    dh, d = _f16(scale.max(-1) / np.float32(smax))
    mh, dmin = _f16(off.max(-1) / np.float32(smax))
    sc = np.clip(np.round(_div(scale, d[:, None])), 0, smax).astype(np.int32)
    m = np.clip(np.round(_div(off, dmin[:, None])), 0, smax).astype(np.int32)
    dl = d[:, None] * sc.astype(np.float32)
    ml = dmin[:, None] * m.astype(np.float32)
    q = np.clip(np.round(_div(xs + ml[..., None], dl[..., None])), 0, qmax).astype(np.int32)
    want = (dl[..., None] * q.astype(np.float32) - ml[..., None]).reshape(nb, -1)
    return dh, mh, sc, m, q, want


def _u8(a):
    return np.asarray(a).astype(np.uint8)


def _pack_2bit_128(q):
    """q [nb, 256] of 2-bit values; element g*128 + s*32 + k goes to byte g*32 + k, bits 2s."""
    q = _u8(q).reshape(-1, 2, 4, 32)
    return (q[:, :, 0] | (q[:, :, 1] << 2) | (q[:, :, 2] << 4) | (q[:, :, 3] << 6)).reshape(-1, 64)


def _pack_scales_k4(sc, m):
    """Eight 6-bit scales and mins into 12 bytes (Q4_K / Q5_K)."""
    sc, m = _u8(sc), _u8(m)
    b = np.zeros((sc.shape[0], 12), np.uint8)
    b[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    b[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    b[:, 8:12] = (sc[:, 4:8] & 0xF) | ((m[:, 4:8] & 0xF) << 4)
    return b


def _q2_k(x):
    dh, mh, sc, m, q, want = _minmax_subblocks(x, 16, 3, 15)
    nb = x.shape[0]
    scales = _u8(sc) | (_u8(m) << 4)
    qs = _pack_2bit_128(q.reshape(nb, 256))
    return np.concatenate([scales, qs, dh.reshape(nb, 1).view(np.uint8), mh.reshape(nb, 1).view(np.uint8)], 1), want


def _q3_k(x):
    dh, sc, q, want = _signed_subblocks(x, 16, -4, 31)
    nb = x.shape[0]
    uq = (q + 4).reshape(nb, 256)
    qs = _pack_2bit_128(uq & 3)
    hb = _u8(uq >> 2).reshape(nb, 8, 32)
    hmask = np.zeros((nb, 32), np.uint8)
    for s in range(8):
        hmask |= hb[:, s] << s
    u = _u8(sc + 32)                                   # 6-bit
    scales = np.zeros((nb, 12), np.uint8)
    for i in range(16):
        scales[:, i % 8] |= (u[:, i] & 0xF) << (4 * (i // 8))
        scales[:, 8 + i % 4] |= (u[:, i] >> 4) << (2 * (i // 4))
    return np.concatenate([hmask, qs, scales, dh.reshape(nb, 1).view(np.uint8)], 1), want


def _q4_k(x):
    dh, mh, sc, m, q, want = _minmax_subblocks(x, 8, 15, 63)
    nb = x.shape[0]
    q = _u8(q).reshape(nb, 4, 2, 32)
    qs = (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(nb, 128)
    return np.concatenate([dh.reshape(nb, 1).view(np.uint8), mh.reshape(nb, 1).view(np.uint8),
                           _pack_scales_k4(sc, m), qs], 1), want


def _q5_k(x):
    dh, mh, sc, m, q, want = _minmax_subblocks(x, 8, 31, 63)
    nb = x.shape[0]
    lo = _u8(q & 0xF).reshape(nb, 4, 2, 32)
    qs = (lo[:, :, 0] | (lo[:, :, 1] << 4)).reshape(nb, 128)
    hi = _u8(q >> 4).reshape(nb, 8, 32)
    qh = np.zeros((nb, 32), np.uint8)
    for j in range(8):
        qh |= hi[:, j] << j
    return np.concatenate([dh.reshape(nb, 1).view(np.uint8), mh.reshape(nb, 1).view(np.uint8),
                           _pack_scales_k4(sc, m), qh, qs], 1), want


def _q6_k(x):
    dh, sc, q, want = _signed_subblocks(x, 16, -32, 127)
    nb = x.shape[0]
    uq = (q + 32).reshape(nb, 256)
    low = _u8(uq & 0xF).reshape(nb, 2, 2, 64)
    ql = (low[:, :, 0] | (low[:, :, 1] << 4)).reshape(nb, 128)
    high = _u8(uq >> 4).reshape(nb, 2, 4, 32)
    qh = (high[:, :, 0] | (high[:, :, 1] << 2) | (high[:, :, 2] << 4) | (high[:, :, 3] << 6)).reshape(nb, 64)
    return np.concatenate([ql, qh, sc.astype(np.int8).view(np.uint8), dh.reshape(nb, 1).view(np.uint8)], 1), want


_K_ENCODERS = {"Q2_K": _q2_k, "Q3_K": _q3_k, "Q4_K": _q4_k, "Q5_K": _q5_k, "Q6_K": _q6_k}
# Loose bounds on ||dequant - x|| / ||x|| for Gaussian-like rows: a quantizer far worse than its bit
# width is a bug here, not a property of the format.
_K_MAX_REL_ERR = {"Q2_K": 0.6, "Q3_K": 0.35, "Q4_K": 0.15, "Q5_K": 0.08, "Q6_K": 0.04}


def quantize_k(x, name):
    """x float32 [rows, cols] (cols a multiple of 256) -> uint8 [rows, cols / 256 * type_size]."""
    qt = QT[name]
    rows, cols = x.shape
    blocks = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, QK_K)
    data, want = _K_ENCODERS[name](blocks)
    data = np.ascontiguousarray(data, dtype=np.uint8)
    assert data.shape[1] == gguf.GGML_QUANT_SIZES[qt][1], (name, data.shape)
    got = gguf.quants.dequantize(data, qt).reshape(-1, QK_K)
    scale = np.abs(blocks).max(-1, keepdims=True) + 1e-30
    bad = np.abs(got - want) > 1e-5 * scale
    if bad.any():
        b = np.argwhere(bad)[0]
        raise AssertionError("%s encoder: block %d element %d decodes to %r, intended %r" %
                             (name, b[0], b[1], got[tuple(b)], want[tuple(b)]))
    rel = np.linalg.norm(got - blocks) / max(np.linalg.norm(blocks), 1e-30)
    if rel > _K_MAX_REL_ERR[name]:
        raise AssertionError("%s encoder: relative error %.3g over the tensor (bound %.2g)" %
                             (name, rel, _K_MAX_REL_ERR[name]))
    return data.reshape(rows, -1)


TYPE_NAMES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
              "Q6_K")


def encode(x, type_name):
    """x [rows, cols] (or [n]) -> (array for GGUFWriter.add_tensor, raw_dtype, type actually used).
    A block type whose block does not divide the row length falls back to F16."""
    x = np.asarray(x, dtype=np.float32)
    if type_name == "F32":
        return np.ascontiguousarray(x), None, "F32"
    if type_name == "F16":
        return np.ascontiguousarray(x.astype(np.float16)), None, "F16"
    qt = QT[type_name]
    block = gguf.GGML_QUANT_SIZES[qt][0]
    if x.shape[-1] % block:
        return encode(x, "F16")
    if type_name in _K_ENCODERS:
        return quantize_k(x.reshape(-1, x.shape[-1]), type_name).reshape(*x.shape[:-1], -1), qt, type_name
    return gguf.quants.quantize(x, qt), qt, type_name


def _type_for(gname, types):
    """types: one type name, or a dict {substring of the GGUF name: type} with '*' the default; the
    longest matching key wins."""
    if isinstance(types, str):
        return types
    best = None
    for k in types:
        if k != "*" and k in gname and (best is None or len(k) > len(best)):
            best = k
    return types[best if best is not None else "*"]


# ---- config ------------------------------------------------------------------------------------------

def _rope_params(cfg):
    """(theta, scaling dict or None) in either spelling (v4 rope_theta + rope_scaling, v5 rope_parameters)."""
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict):
        theta = rp.get("rope_theta", cfg.get("rope_theta", 10000.0))
        typ = rp.get("rope_type", rp.get("type", "default"))
        return float(theta), (rp if typ not in (None, "default") else None)
    rs = cfg.get("rope_scaling")
    theta = cfg.get("rope_theta", cfg.get("rotary_emb_base", 10000.0))
    if isinstance(rs, dict) and rs.get("rope_type", rs.get("type")) not in (None, "default"):
        return float(theta), rs
    return float(theta), None


def llama3_rope_divisors(theta, dim, scaling):
    """rope_freqs.weight as llama.cpp computes it: one divisor per rotary frequency (float32)."""
    factor = float(scaling.get("factor", 8.0))
    low = float(scaling.get("low_freq_factor", 1.0))
    high = float(scaling.get("high_freq_factor", 4.0))
    old = float(scaling.get("original_max_position_embeddings", 8192))
    freqs = np.float32(1.0) / (np.float32(theta) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))
    lo_wl, hi_wl = old / low, old / high
    out = []
    for f in freqs:
        wl = np.float32(2 * math.pi) / f
        if wl < hi_wl:
            out.append(1.0)
        elif wl > lo_wl:
            out.append(factor)
        else:
            smooth = (np.float32(old) / wl - np.float32(low)) / np.float32(high - low)
            out.append(np.float32(1) / ((np.float32(1) - smooth) / np.float32(factor) + smooth))
    return np.asarray(out, dtype=np.float32)


class Hparams:
    """The config.json fields the conversion needs, by architecture."""

    def __init__(self, cfg):
        self.cfg = cfg
        arch = cfg.get("model_type")
        self.arch = arch
        if arch == "gpt2":
            self.d = int(cfg.get("n_embd", cfg.get("hidden_size")))
            self.n_heads = int(cfg.get("n_head", cfg.get("num_attention_heads")))
            self.n_layers = int(cfg.get("n_layer", cfg.get("num_hidden_layers")))
            self.n_ctx = int(cfg.get("n_positions", cfg.get("max_position_embeddings")))
            self.d_ff = int(cfg.get("n_inner") or 4 * self.d)
            self.eps = float(cfg.get("layer_norm_epsilon", 1e-5))
            self.n_kv = self.n_heads
            self.head_dim = self.d // self.n_heads
        else:
            self.d = int(cfg["hidden_size"])
            self.n_heads = int(cfg["num_attention_heads"])
            self.n_layers = int(cfg["num_hidden_layers"])
            self.n_ctx = int(cfg["max_position_embeddings"])
            self.d_ff = int(cfg["intermediate_size"])
            self.n_kv = int(cfg.get("num_key_value_heads") or self.n_heads)
            self.head_dim = int(cfg.get("head_dim") or self.d // self.n_heads)
            if arch == "gpt_neox":
                self.eps = float(cfg.get("layer_norm_eps", 1e-5))
            else:
                self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        self.vocab = int(cfg["vocab_size"])
        self.theta, self.scaling = _rope_params(cfg)
        self.tied = bool(cfg.get("tie_word_embeddings", arch == "gpt2"))


def _write_metadata(w, hp, sliding_window_key, name):
    a = GGUF_ARCH[hp.arch]
    u32 = lambda k, v: w.add_uint32("%s.%s" % (a, k), int(v))  # noqa: E731
    f32 = lambda k, v: w.add_float32("%s.%s" % (a, k), float(v))  # noqa: E731
    w.add_name(name)
    w.add_uint32("general.quantization_version", 2)
    u32("block_count", hp.n_layers)
    u32("context_length", hp.n_ctx)
    u32("embedding_length", hp.d)
    u32("feed_forward_length", hp.d_ff)
    u32("attention.head_count", hp.n_heads)
    u32("vocab_size", hp.vocab)
    if hp.arch == "gpt2":
        f32("attention.layer_norm_epsilon", hp.eps)
        return
    if hp.arch == "gpt_neox":
        pct = hp.cfg.get("rotary_pct", hp.cfg.get("partial_rotary_factor", 0.25))
        u32("rope.dimension_count", int(float(pct) * hp.head_dim))
        w.add_bool("gptneox.use_parallel_residual", bool(hp.cfg.get("use_parallel_residual", True)))
        f32("attention.layer_norm_epsilon", hp.eps)
        f32("rope.freq_base", hp.theta)
        return
    u32("attention.head_count_kv", hp.n_kv)
    if hp.head_dim != hp.d // hp.n_heads or hp.d % hp.n_heads:
        u32("attention.key_length", hp.head_dim)
        u32("attention.value_length", hp.head_dim)
    f32("attention.layer_norm_rms_epsilon", hp.eps)
    f32("rope.freq_base", hp.theta)
    u32("rope.dimension_count", hp.head_dim)
    if hp.scaling is not None:
        u32("rope.scaling.original_context_length", hp.scaling.get("original_max_position_embeddings", 8192))
    if sliding_window_key and hp.arch == "mistral" and hp.cfg.get("sliding_window"):
        u32("attention.sliding_window", hp.cfg["sliding_window"])


_LLAMA3_SPLIT = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
                 "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def _bpe_pre_name(pre):
    """llama.cpp's tokenizer.ggml.pre for a tokenizer.json pre_tokenizer: GPT-2's byte-level regex is
    'gpt-2', Llama 3's Split regex followed by byte-level is 'llama-bpe'."""
    if pre and pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    if pre and pre.get("type") == "Sequence":
        kinds = [(p.get("type"), (p.get("pattern") or {}).get("Regex")) for p in pre.get("pretokenizers", [])]
        if kinds == [("Split", _LLAMA3_SPLIT), ("ByteLevel", None)]:
            return "llama-bpe"
    raise ValueError("no llama.cpp pre-tokenizer name for %s" % json.dumps(pre)[:200])


def _write_tokenizer(w, model_dir):
    """A byte-level BPE tokenizer.json as tokenizer.ggml.* (model "gpt2"): tokens by id, token types (3 for
    special added tokens), merges, the pre-tokenizer name, and BOS/EOS with add_bos_token from the
    post-processor (a template that starts with a special token)."""
    with open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    model = tj.get("model", {})
    if model.get("type") != "BPE":
        raise ValueError("only BPE tokenizers are converted here (found %r)" % model.get("type"))
    vocab = dict(model["vocab"])
    special = set()
    for t in tj.get("added_tokens", []):
        vocab[t["content"]] = t["id"]
        if t.get("special"):
            special.add(t["id"])
    n = max(vocab.values()) + 1
    tokens = ["[PAD%d]" % i for i in range(n)]
    for tok, i in vocab.items():
        tokens[i] = tok
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(_bpe_pre_name(tj.get("pre_tokenizer")))
    w.add_token_list(tokens)
    w.add_token_types([3 if i in special else 1 for i in range(n)])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])])
    cfg = {}
    if os.path.exists(os.path.join(model_dir, "tokenizer_config.json")):
        with open(os.path.join(model_dir, "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
    for kind, add in (("bos", w.add_bos_token_id), ("eos", w.add_eos_token_id)):
        tok = cfg.get(kind + "_token")
        tok = tok.get("content") if isinstance(tok, dict) else tok
        if tok in vocab:
            add(vocab[tok])
    post = tj.get("post_processor") or {}
    first = (post.get("single") or [{}])[0] if post.get("type") == "TemplateProcessing" else {}
    w.add_add_bos_token("SpecialToken" in first)


def convert(model_dir, out_path, types="F32", permute_qk=None, sliding_window_key=True, tokenizer=False,
            name=None, meta=None, drop=(), raw_tensors=None, alignment=None):
    """Writes the GGUF of a Hugging Face model directory. Returns {GGUF tensor name: type actually stored}.

    types: one type name for every 2-D tensor, or a dict {substring of the GGUF name: type name, '*':
      default} (the longest matching substring wins).
    permute_qk: None permutes q/k rows for the llama architecture only (the convention); False never,
      True always (both give wrong files, for tests that the permutation matters and is applied to llama
      only).
    For malformed-file tests: meta {key: None (removed) | (GGUFValueType name, value)} overrides metadata
    after it is built (general.architecture included); drop leaves tensors out; raw_tensors {GGUF name:
    (uint8 bytes [rows, bytes per row], GGMLQuantizationType)} stores those bytes in place of the tensor
    ({"rope_freqs.weight": (float32 divisors, None)} replaces the llama3 divisors). alignment: a
    general.alignment other than the default 32."""
    if gguf is None:
        raise RuntimeError("the gguf package is not installed (pip install gguf==0.19.0)")
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    hp = Hparams(cfg)
    weights, _ = st.load_dir(model_dir)
    if hp.arch == "gpt2" and any(n.startswith("transformer.") for n in weights):
        weights = {(n[len("transformer."):] if n.startswith("transformer.") else n): a for n, a in weights.items()}
    if permute_qk is None:
        permute_qk = GGUF_ARCH[hp.arch] == "llama"
    w = gguf.GGUFWriter(out_path, GGUF_ARCH[hp.arch])
    if alignment is not None:
        w.add_custom_alignment(alignment)  # general.alignment, and the writer pads to it
    _write_metadata(w, hp, sliding_window_key, name or os.path.basename(os.path.normpath(model_dir)))
    if tokenizer:
        _write_tokenizer(w, model_dir)
    for key, v in (meta or {}).items():
        w.kv_data[0].pop(key, None)
        if v is not None:
            w.add_key_value(key, v[1], gguf.GGUFValueType[v[0]])
    raw_tensors = raw_tensors or {}
    stored = {}
    used = set()
    for hname, gname, kind in name_map(hp.arch, hp.n_layers, permuted=True):
        if hname not in weights:
            continue
        used.add(hname)
        if (gname == "output.weight" and hp.tied) or gname in drop:
            continue
        if gname in raw_tensors:
            data, qt = raw_tensors[gname]
            w.add_tensor(gname, np.ascontiguousarray(data, dtype=np.uint8), raw_dtype=qt)
            stored[gname] = qt.name
            continue
        x = weights[hname].astype(np.float32)
        if kind == "conv1d":
            x = np.ascontiguousarray(x.T)
        elif kind == "neox_qkv":
            x = neox_qkv_to_gguf(x, hp.n_heads)
        elif kind == "perm_q" and permute_qk:
            x = permute_rotary(x, hp.n_heads)
        elif kind == "perm_k" and permute_qk:
            x = permute_rotary(x, hp.n_kv)
        t = "F32" if x.ndim == 1 else _type_for(gname, types)
        data, raw, stored[gname] = encode(x, t)
        w.add_tensor(gname, data, raw_dtype=raw)
    left = [n for n in weights if n not in used and not _SKIP.search(n)]
    if left:
        raise ValueError("%s: tensors with no GGUF name: %s" % (model_dir, left[:5]))
    if hp.scaling is not None and hp.arch != "gpt_neox":
        typ = hp.scaling.get("rope_type", hp.scaling.get("type"))
        if typ != "llama3":
            raise ValueError("rope scaling %r is not converted here" % typ)
        if "rope_freqs.weight" in raw_tensors:
            w.add_tensor("rope_freqs.weight", np.asarray(raw_tensors["rope_freqs.weight"][0], dtype=np.float32))
        else:
            w.add_tensor("rope_freqs.weight", llama3_rope_divisors(hp.theta, hp.head_dim, hp.scaling))
        stored["rope_freqs.weight"] = "F32"
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return stored


# ---- GGUF -> dequantized HF directory ----------------------------------------------------------------

def _field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def read_tensors(path):
    """{name: (float32 array in row-major [rows, cols] / [n], ggml type name)} of a GGUF file, dequantized
    with gguf.quants.dequantize."""
    r = gguf.GGUFReader(path)
    out = {}
    for t in r.tensors:
        shape = tuple(int(s) for s in reversed(list(t.shape)))
        qt = QT(int(t.tensor_type))
        data = np.asarray(t.data)
        if qt == QT.F32:
            a = data.astype(np.float32)
        elif qt == QT.F16:
            a = data.view(np.float16).astype(np.float32)
        else:
            a = gguf.quants.dequantize(data.view(np.uint8), qt)
        out[t.name] = (np.ascontiguousarray(a.reshape(shape), dtype=np.float32), qt.name)
    return r, out


def config_from_gguf(reader):
    """config.json (Hugging Face spelling) from a GGUF's metadata, for llama-architecture files."""
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ValueError("config_from_gguf handles llama files only (found %r)" % arch)
    k = lambda s, d=None: _field(reader, "llama." + s, d)  # noqa: E731
    names = {t.name: t for t in reader.tensors}
    emb = names["token_embd.weight"]
    d = int(k("embedding_length"))
    H = int(k("attention.head_count"))
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "float32",
        "vocab_size": int(k("vocab_size", int(emb.shape[1]))),
        "hidden_size": d, "num_attention_heads": H, "num_hidden_layers": int(k("block_count")),
        "num_key_value_heads": int(k("attention.head_count_kv", H)),
        "intermediate_size": int(k("feed_forward_length")),
        "max_position_embeddings": int(k("context_length")),
        "rms_norm_eps": float(k("attention.layer_norm_rms_epsilon")),
        "rope_theta": float(k("rope.freq_base", 10000.0)),
        "tie_word_embeddings": "output.weight" not in names,
        "hidden_act": "silu", "attention_bias": "blk.0.attn_q.bias" in names, "mlp_bias": "blk.0.ffn_up.bias" in names,
    }
    hd = k("attention.key_length")
    if hd is not None:
        cfg["head_dim"] = int(hd)
    if "rope_freqs.weight" in names:
        raise ValueError("llama3 rope scaling in a GGUF is not mapped back here")
    return cfg


def dequantized_hf_dir(gguf_path, out_dir, config=None, quantized_as="F32"):
    """Writes out_dir/config.json and an F32 out_dir/model.safetensors holding the GGUF's dequantized
    weights in Hugging Face names and layout. config: the HF config.json dict (default: built from the
    GGUF metadata, llama files only). quantized_as="F16" rounds the dequantized block-quantized tensors to
    float16 (what a 16-bit backend receives, docs/gguf.md). Returns {GGUF tensor name: stored type name}."""
    reader, tensors = read_tensors(gguf_path)
    if quantized_as == "F16":
        tensors = {n: ((a.astype(np.float16).astype(np.float32) if t not in ("F32", "F16", "BF16") else a), t)
                   for n, (a, t) in tensors.items()}
    elif quantized_as != "F32":
        raise ValueError("quantized_as %r: F32 or F16" % quantized_as)
    cfg = dict(config) if config is not None else config_from_gguf(reader)
    cfg["torch_dtype"] = "float32"
    hp = Hparams(cfg)
    back = {g: (h, kind) for h, g, kind in name_map(hp.arch, hp.n_layers)}
    arrays = {}
    for gname, (a, _) in tensors.items():
        if gname == "rope_freqs.weight":
            continue
        if gname not in back:
            raise ValueError("%s: tensor %r has no Hugging Face name" % (gguf_path, gname))
        hname, kind = back[gname]
        if kind == "conv1d":
            a = np.ascontiguousarray(a.T)
        elif kind == "neox_qkv":
            a = neox_qkv_from_gguf(a, hp.n_heads)
        elif kind == "perm_q":
            a = unpermute_rotary(a, hp.n_heads)
        elif kind == "perm_k":
            a = unpermute_rotary(a, hp.n_kv)
        arrays[hname] = a
    if hp.tied:
        arrays.pop("lm_head.weight", None)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=1)
    st.write_arrays(os.path.join(out_dir, "model.safetensors"), arrays, "F32")
    return {g: t for g, (_, t) in tensors.items()}


def tokenizer_json_from_gguf(reader):
    """A Hugging Face tokenizer.json (byte-level BPE, no normalizer, no post-processor) from a GGUF's
    tokenizer.ggml.* keys of model "gpt2", for the `tokenizers` package."""
    model = _field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise ValueError("only tokenizer.ggml.model 'gpt2' is handled (found %r)" % model)
    tokens = _field(reader, "tokenizer.ggml.tokens")
    types = _field(reader, "tokenizer.ggml.token_type") or [1] * len(tokens)
    merges = _field(reader, "tokenizer.ggml.merges") or []
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, (s, t) in enumerate(zip(tokens, types)) if t == 3]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "vocab": {s: i for i, s in enumerate(tokens)}, "merges": list(merges)},
    }


# ---- byte layout, for tests that corrupt a file --------------------------------------------------------

_SCALAR_SIZE = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def layout(path):
    """Where every field of a GGUF file (version 2/3, little-endian) lies, parsed by hand:
    {"size", "n_tensors_at", "n_kv_at", "kv": [{"key", "at" (its length field), "type_at", "value_at",
    "type", "end"}], "tensors": [{"name", "at", "n_dims_at", "ne_at", "ne", "type_at", "type",
    "offset_at", "offset"}], "info_end", "alignment", "data_start"}."""
    import struct

    with open(path, "rb") as f:
        b = f.read()
    pos = 8
    u32 = lambda p: struct.unpack_from("<I", b, p)[0]  # noqa: E731
    u64 = lambda p: struct.unpack_from("<Q", b, p)[0]  # noqa: E731
    n_t, n_kv = u64(pos), u64(pos + 8)
    out = {"size": len(b), "n_tensors_at": 8, "n_kv_at": 16, "kv": [], "tensors": []}
    pos = 24

    def string(p):
        n = u64(p)
        return b[p + 8:p + 8 + n].decode("utf-8", "replace"), p + 8 + n

    def value(t, p):
        if t in _SCALAR_SIZE:
            return p + _SCALAR_SIZE[t]
        if t == 8:
            return string(p)[1]
        assert t == 9, t
        et, n = u32(p), u64(p + 4)
        p += 12
        for _ in range(n):
            p = value(et, p)
        return p

    alignment = 32
    for _ in range(n_kv):
        key, p = string(pos)
        t = u32(p)
        end = value(t, p + 4)
        if key == "general.alignment":
            alignment = u32(p + 4)
        out["kv"].append({"key": key, "at": pos, "type_at": p, "value_at": p + 4, "type": t, "end": end})
        pos = end
    for _ in range(n_t):
        name, p = string(pos)
        nd = u32(p)
        ne = [u64(p + 4 + 8 * i) for i in range(nd)]
        q = p + 4 + 8 * nd
        out["tensors"].append({"name": name, "at": pos, "n_dims_at": p, "ne_at": p + 4, "ne": ne, "type_at": q,
                               "type": u32(q), "offset_at": q + 4, "offset": u64(q + 4)})
        pos = q + 12
    out["info_end"] = pos
    out["alignment"] = alignment
    out["data_start"] = (pos + alignment - 1) // alignment * alignment
    return out
