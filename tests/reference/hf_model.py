"""A float64 forward pass of Hugging Face causal language models, written from the transformers
semantics of each architecture with numpy only (no torch, nothing from the engine).

Supported: gpt2, gpt_neox, llama, mistral, qwen2. The forward returns the residual stream at every
capture point of docs/hdf5-format.md:
  embed   input to layer 0 (token embedding, plus learned positions for gpt2)
  mid.i   residual after layer i's attention: x + attn(norm1(x)) (parallel residual: the same, without
          the MLP branch)
  post.i  output of layer i
and the model's output logits (final norm, then the unembedding).

Every prompt is an independent sequence: positions start at 0 and attention is causal within it.

Traps this file spells out, because they are where implementations usually go wrong:
  - GPT-2's Conv1D stores weights as [in, out]: y = x W + b, and c_attn's output is [q | k | v].
  - GPT-NeoX's query_key_value is an nn.Linear [3d, d] whose output is interleaved per head: the columns
    of head h are [q_h (hd), k_h (hd), v_h (hd)].
  - GPT-NeoX rotates only the first rot_dim = int(head_dim * rotary_pct) dims of each head.
  - RoPE here is rotate-half (the halves of the rotated dims are paired), not interleaved pairs.
  - GQA: query head h reads key/value head h // (n_heads / n_kv_heads) (transformers' repeat_kv).
  - llama's head_dim may differ from hidden_size / num_attention_heads.
"""

import json
import math
import os

import numpy as np

from . import safetensors_io as st

ARCH_FROM_CLASS = {
    "GPT2LMHeadModel": "gpt2",
    "GPT2Model": "gpt2",
    "GPTNeoXForCausalLM": "gpt_neox",
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
}
SUPPORTED = ("gpt2", "gpt_neox", "llama", "mistral", "qwen2")


class ConfigError(ValueError):
    pass


def _req(cfg, *keys):
    for k in keys:
        if k in cfg and cfg[k] is not None:
            return cfg[k]
    raise ConfigError("config.json: missing field %s" % " / ".join(keys))


def _opt(cfg, key, default):
    v = cfg.get(key)
    return default if v is None else v


# ---- activations ----------------------------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_tanh(x):
    """transformers' gelu_new / gelu_pytorch_tanh."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    """transformers' "gelu" (torch.nn.functional.gelu, exact)."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def silu(x):
    return x / (1.0 + np.exp(-x))


ACTIVATIONS = {
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu_fast": None,  # a different approximation: refuse rather than guess
    "gelu": gelu_erf,
    "silu": silu,
    "swish": silu,
}


def activation(name):
    f = ACTIVATIONS.get(name)
    if f is None:
        raise ConfigError("activation %r is not supported by the reference" % name)
    return f


# ---- norms ----------------------------------------------------------------------------------------

def layer_norm(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)  # population variance, as torch
    y = (x - mu) / np.sqrt(var + eps) * w
    return y + b if b is not None else y


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * w


# ---- RoPE -----------------------------------------------------------------------------------------

def rope_inv_freq(rope):
    """Inverse frequencies [rot_dim/2] as transformers' ROPE_INIT_FUNCTIONS compute them (in float64)."""
    dim = rope["rot_dim"]
    inv = 1.0 / (rope["theta"] ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    kind = rope["type"]
    if kind == "default":
        return inv
    if kind == "linear":
        return inv / rope["factor"]
    if kind == "llama3":
        factor = rope["factor"]
        low = rope["low_freq_factor"]
        high = rope["high_freq_factor"]
        old_ctx = rope["original_max_position_embeddings"]
        low_wavelen = old_ctx / low
        high_wavelen = old_ctx / high
        wavelen = 2 * math.pi / inv
        inv_l = np.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old_ctx / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        return np.where(medium, smoothed, inv_l)
    raise ConfigError("rope type %r is not supported by the reference" % kind)


def apply_rope(x, positions, rope):
    """x [T, heads, hd]; rotate-half RoPE on the first rot_dim dims of every head."""
    rot = rope["rot_dim"]
    if rot == 0:
        return x
    inv = rope_inv_freq(rope)
    freqs = np.outer(positions.astype(np.float64), inv)  # [T, rot/2]
    emb = np.concatenate([freqs, freqs], axis=-1)          # [T, rot]
    cos = np.cos(emb)[:, None, :]
    sin = np.sin(emb)[:, None, :]
    xr = x[..., :rot]
    half = rot // 2
    rotated = np.concatenate([-xr[..., half:], xr[..., :half]], axis=-1)
    out = x.copy()
    out[..., :rot] = xr * cos + rotated * sin
    return out


def _rope_from_config(cfg, head_dim, theta_default, theta_keys, pct_keys, pct_default):
    """Resolves theta, scaling and rotary dims from either spelling:
    v4: rope_theta (or rotary_emb_base) + rope_scaling {rope_type|type, ...};
    v5: rope_parameters {rope_type, rope_theta, [partial_rotary_factor], scaling fields}."""
    pct = pct_default
    for k in pct_keys:
        if cfg.get(k) is not None:
            pct = float(cfg[k])
            break
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and rp:
        params = dict(rp)
        theta = float(_req(params, "rope_theta"))
        kind = params.get("rope_type") or params.get("type") or "default"
        if params.get("partial_rotary_factor") is not None:
            pct = float(params["partial_rotary_factor"])
    else:
        theta = theta_default
        for k in theta_keys:
            if cfg.get(k) is not None:
                theta = float(cfg[k])
                break
        params = cfg.get("rope_scaling") or {}
        kind = params.get("rope_type") or params.get("type") or "default"
    rope = {"theta": theta, "type": kind, "rot_dim": int(head_dim * pct)}
    if rope["rot_dim"] % 2:
        raise ConfigError("rotary dims %d are odd" % rope["rot_dim"])
    if kind == "linear":
        rope["factor"] = float(_req(params, "factor"))
    elif kind == "llama3":
        for k in ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"):
            rope[k] = float(_req(params, k))
    elif kind != "default":
        raise ConfigError("rope type %r is not supported by the reference" % kind)
    return rope


# ---- attention ------------------------------------------------------------------------------------

def attention(q, k, v, scale, window=None):
    """q [T, H, hd], k/v [T, KV, hd] -> [T, H*hd]; causal, GQA by repeat_kv's grouping."""
    T, H, hd = q.shape
    KV = k.shape[1]
    rep = H // KV
    out = np.empty((T, H, hd))
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    allowed = j <= i
    if window is not None:
        allowed &= (i - j) < window
    for h in range(H):
        kh = k[:, h // rep, :]
        vh = v[:, h // rep, :]
        s = (q[:, h, :] @ kh.T) * scale
        s = np.where(allowed, s, -np.inf)
        s = s - s.max(axis=-1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=-1, keepdims=True)
        out[:, h, :] = p @ vh
    return out.reshape(T, H * hd)


# ---- the model ------------------------------------------------------------------------------------

class Model:
    """A model directory loaded in float64. Attributes: arch, n_layers, d, vocab, n_ctx, cfg (raw
    config.json), w (tensor name -> float64 array, prefix stripped for gpt2), dtypes (name -> storage
    dtype), and the per-architecture hyper-parameters."""

    def __init__(self, model_dir):
        self.dir = model_dir
        with open(os.path.join(model_dir, "config.json"), "r", encoding="utf-8") as f:
            cfg = json.load(f)
        self.cfg = cfg
        arch = cfg.get("model_type")
        if arch is None and cfg.get("architectures"):
            arch = ARCH_FROM_CLASS.get(cfg["architectures"][0])
        if arch not in SUPPORTED:
            raise ConfigError("architecture %r is not supported" % arch)
        self.arch = arch
        w, self.dtypes = st.load_dir(model_dir)
        getattr(self, "_init_" + arch)(cfg, w)
        self.points = ["embed"]
        for i in range(self.n_layers):
            self.points += ["mid.%d" % i, "post.%d" % i]

    # -- weights access with shape checks (the checkpoint is synthesized by the engine under test, so
    #    a wrong shape here is a finding, not a reason to adapt)
    def _t(self, name, shape):
        if name not in self.w:
            raise ConfigError("tensor %r missing from the checkpoint" % name)
        a = self.w[name]
        if list(a.shape) != list(shape):
            raise ConfigError("tensor %r has shape %s, config implies %s" % (name, list(a.shape), list(shape)))
        return a

    def _topt(self, name, shape):
        return self._t(name, shape) if name in self.w else None

    def _init_gpt2(self, cfg, w):
        prefix = "transformer."
        if any(n.startswith(prefix) for n in w):
            w = {(n[len(prefix):] if n.startswith(prefix) else n): a for n, a in w.items()}
        self.w = w
        d = self.d = int(_req(cfg, "n_embd", "hidden_size"))
        self.n_heads = int(_req(cfg, "n_head", "num_attention_heads"))
        self.n_kv_heads = self.n_heads
        self.n_layers = int(_req(cfg, "n_layer", "num_hidden_layers"))
        self.n_ctx = int(_req(cfg, "n_positions", "max_position_embeddings"))
        self.vocab = int(_req(cfg, "vocab_size"))
        self.eps = float(_opt(cfg, "layer_norm_epsilon", 1e-5))
        self.act = activation(_opt(cfg, "activation_function", "gelu_new"))
        self.head_dim = d // self.n_heads
        self.d_ff = int(_opt(cfg, "n_inner", 4 * d))
        if cfg.get("scale_attn_by_inverse_layer_idx"):
            raise ConfigError("scale_attn_by_inverse_layer_idx is not supported by the reference")
        self.scale = 1.0 / math.sqrt(self.head_dim) if _opt(cfg, "scale_attn_weights", True) else 1.0
        self.tied = bool(_opt(cfg, "tie_word_embeddings", True))
        V, ff, L = self.vocab, self.d_ff, self.n_layers
        self.wte = self._t("wte.weight", [V, d])
        self.wpe = self._t("wpe.weight", [self.n_ctx, d])
        self.layers = []
        for i in range(L):
            p = "h.%d." % i
            self.layers.append({
                "ln1_w": self._t(p + "ln_1.weight", [d]), "ln1_b": self._t(p + "ln_1.bias", [d]),
                "qkv_w": self._t(p + "attn.c_attn.weight", [d, 3 * d]),
                "qkv_b": self._t(p + "attn.c_attn.bias", [3 * d]),
                "o_w": self._t(p + "attn.c_proj.weight", [d, d]), "o_b": self._t(p + "attn.c_proj.bias", [d]),
                "ln2_w": self._t(p + "ln_2.weight", [d]), "ln2_b": self._t(p + "ln_2.bias", [d]),
                "fc_w": self._t(p + "mlp.c_fc.weight", [d, ff]), "fc_b": self._t(p + "mlp.c_fc.bias", [ff]),
                "proj_w": self._t(p + "mlp.c_proj.weight", [ff, d]),
                "proj_b": self._t(p + "mlp.c_proj.bias", [d]),
            })
        self.lnf_w = self._t("ln_f.weight", [d])
        self.lnf_b = self._t("ln_f.bias", [d])
        if self.tied or "lm_head.weight" not in w:
            self.unembed = self.wte
        else:
            self.unembed = self._t("lm_head.weight", [V, d])
        self.unembed_b = None

    def _init_gpt_neox(self, cfg, w):
        self.w = w
        d = self.d = int(_req(cfg, "hidden_size"))
        self.n_heads = int(_req(cfg, "num_attention_heads"))
        self.n_kv_heads = self.n_heads
        self.n_layers = int(_req(cfg, "num_hidden_layers"))
        self.n_ctx = int(_req(cfg, "max_position_embeddings"))
        self.vocab = int(_req(cfg, "vocab_size"))
        self.d_ff = int(_req(cfg, "intermediate_size"))
        self.eps = float(_opt(cfg, "layer_norm_eps", 1e-5))
        self.act = activation(_opt(cfg, "hidden_act", "gelu"))
        self.head_dim = d // self.n_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.parallel = bool(_opt(cfg, "use_parallel_residual", True))
        self.tied = bool(_opt(cfg, "tie_word_embeddings", False))
        self.rope = _rope_from_config(cfg, self.head_dim, 10000.0, ("rotary_emb_base", "rope_theta"),
                                      ("rotary_pct", "partial_rotary_factor"), 0.25)
        bias = bool(_opt(cfg, "attention_bias", True))
        V, ff = self.vocab, self.d_ff
        self.embed = self._t("gpt_neox.embed_in.weight", [V, d])
        self.layers = []
        for i in range(self.n_layers):
            p = "gpt_neox.layers.%d." % i
            self.layers.append({
                "ln1_w": self._t(p + "input_layernorm.weight", [d]),
                "ln1_b": self._t(p + "input_layernorm.bias", [d]),
                "ln2_w": self._t(p + "post_attention_layernorm.weight", [d]),
                "ln2_b": self._t(p + "post_attention_layernorm.bias", [d]),
                "qkv_w": self._t(p + "attention.query_key_value.weight", [3 * d, d]),
                "qkv_b": self._t(p + "attention.query_key_value.bias", [3 * d]) if bias else None,
                "o_w": self._t(p + "attention.dense.weight", [d, d]),
                "o_b": self._t(p + "attention.dense.bias", [d]) if bias else None,
                "up_w": self._t(p + "mlp.dense_h_to_4h.weight", [ff, d]),
                "up_b": self._t(p + "mlp.dense_h_to_4h.bias", [ff]),
                "down_w": self._t(p + "mlp.dense_4h_to_h.weight", [d, ff]),
                "down_b": self._t(p + "mlp.dense_4h_to_h.bias", [d]),
            })
        self.lnf_w = self._t("gpt_neox.final_layer_norm.weight", [d])
        self.lnf_b = self._t("gpt_neox.final_layer_norm.bias", [d])
        self.unembed = self.embed if self.tied else self._t("embed_out.weight", [V, d])
        self.unembed_b = None

    def _init_llama_family(self, cfg, w):
        self.w = w
        d = self.d = int(_req(cfg, "hidden_size"))
        H = self.n_heads = int(_req(cfg, "num_attention_heads"))
        KV = self.n_kv_heads = int(_opt(cfg, "num_key_value_heads", H))
        if H % KV:
            raise ConfigError("num_attention_heads %d is not a multiple of num_key_value_heads %d" % (H, KV))
        self.n_layers = int(_req(cfg, "num_hidden_layers"))
        self.n_ctx = int(_req(cfg, "max_position_embeddings"))
        self.vocab = int(_req(cfg, "vocab_size"))
        self.d_ff = int(_req(cfg, "intermediate_size"))
        self.eps = float(_opt(cfg, "rms_norm_eps", 1e-6))
        self.act = activation(_opt(cfg, "hidden_act", "silu"))
        hd = self.head_dim = int(_opt(cfg, "head_dim", d // H))
        self.scale = hd ** -0.5
        self.tied = bool(_opt(cfg, "tie_word_embeddings", False))
        self.rope = _rope_from_config(cfg, hd, 10000.0, ("rope_theta",), ("partial_rotary_factor",), 1.0)
        self.window = None
        if self.arch == "mistral":
            self.window = cfg.get("sliding_window")
            qkv_bias = o_bias = mlp_bias = False
        elif self.arch == "qwen2":
            if cfg.get("use_sliding_window"):
                raise ConfigError("qwen2 use_sliding_window is not supported by the reference")
            qkv_bias, o_bias, mlp_bias = True, False, False
        else:
            qkv_bias = o_bias = bool(_opt(cfg, "attention_bias", False))
            mlp_bias = bool(_opt(cfg, "mlp_bias", False))
        V, ff = self.vocab, self.d_ff
        self.embed = self._t("model.embed_tokens.weight", [V, d])
        self.layers = []
        for i in range(self.n_layers):
            p = "model.layers.%d." % i
            a = p + "self_attn."
            m = p + "mlp."
            self.layers.append({
                "ln1_w": self._t(p + "input_layernorm.weight", [d]),
                "ln2_w": self._t(p + "post_attention_layernorm.weight", [d]),
                "q_w": self._t(a + "q_proj.weight", [H * hd, d]),
                "k_w": self._t(a + "k_proj.weight", [KV * hd, d]),
                "v_w": self._t(a + "v_proj.weight", [KV * hd, d]),
                "q_b": self._t(a + "q_proj.bias", [H * hd]) if qkv_bias else None,
                "k_b": self._t(a + "k_proj.bias", [KV * hd]) if qkv_bias else None,
                "v_b": self._t(a + "v_proj.bias", [KV * hd]) if qkv_bias else None,
                "o_w": self._t(a + "o_proj.weight", [d, H * hd]),
                "o_b": self._t(a + "o_proj.bias", [d]) if o_bias else None,
                "gate_w": self._t(m + "gate_proj.weight", [ff, d]),
                "up_w": self._t(m + "up_proj.weight", [ff, d]),
                "down_w": self._t(m + "down_proj.weight", [d, ff]),
                "gate_b": self._t(m + "gate_proj.bias", [ff]) if mlp_bias else None,
                "up_b": self._t(m + "up_proj.bias", [ff]) if mlp_bias else None,
                "down_b": self._t(m + "down_proj.bias", [d]) if mlp_bias else None,
            })
        self.norm_w = self._t("model.norm.weight", [d])
        if self.tied:
            self.unembed = self.embed
        else:
            self.unembed = self._t("lm_head.weight", [V, d])
        self.unembed_b = None

    _init_llama = _init_llama_family
    _init_mistral = _init_llama_family
    _init_qwen2 = _init_llama_family

    # -- pieces ---------------------------------------------------------------------------------------

    def final_norm(self, h):
        """The model's final norm applied to rows h [..., d], each with its own statistics."""
        if self.arch in ("gpt2", "gpt_neox"):
            return layer_norm(h, self.lnf_w, self.lnf_b, self.eps)
        return rms_norm(h, self.norm_w, self.eps)

    def logits_of(self, h):
        """Lens logits of residual rows h [..., d]: unembedding of the final norm (plus bias if any)."""
        z = self.final_norm(h) @ self.unembed.T
        return z + self.unembed_b if self.unembed_b is not None else z

    @staticmethod
    def _lin(x, w, b):
        """nn.Linear: w is [out, in]."""
        y = x @ w.T
        return y + b if b is not None else y

    def _layer_gpt2(self, x, L, pos):
        T, d, H, hd = x.shape[0], self.d, self.n_heads, self.head_dim
        qkv = layer_norm(x, L["ln1_w"], L["ln1_b"], self.eps) @ L["qkv_w"] + L["qkv_b"]  # Conv1D
        q = qkv[:, :d].reshape(T, H, hd)
        k = qkv[:, d:2 * d].reshape(T, H, hd)
        v = qkv[:, 2 * d:].reshape(T, H, hd)
        a = attention(q, k, v, self.scale) @ L["o_w"] + L["o_b"]
        mid = x + a
        hmid = self.act(layer_norm(mid, L["ln2_w"], L["ln2_b"], self.eps) @ L["fc_w"] + L["fc_b"])
        return mid, mid + (hmid @ L["proj_w"] + L["proj_b"])

    def _layer_gpt_neox(self, x, L, pos):
        T, H, hd = x.shape[0], self.n_heads, self.head_dim
        qkv = self._lin(layer_norm(x, L["ln1_w"], L["ln1_b"], self.eps), L["qkv_w"], L["qkv_b"])
        qkv = qkv.reshape(T, H, 3 * hd)  # interleaved per head: [q_h | k_h | v_h]
        q = apply_rope(qkv[:, :, :hd], pos, self.rope)
        k = apply_rope(qkv[:, :, hd:2 * hd], pos, self.rope)
        v = qkv[:, :, 2 * hd:]
        a = self._lin(attention(q, k, v, self.scale), L["o_w"], L["o_b"])
        mid = x + a

        def mlp(u):
            hh = self.act(self._lin(layer_norm(u, L["ln2_w"], L["ln2_b"], self.eps), L["up_w"], L["up_b"]))
            return self._lin(hh, L["down_w"], L["down_b"])

        if self.parallel:
            return mid, x + a + mlp(x)
        return mid, mid + mlp(mid)

    def _layer_llama(self, x, L, pos):
        T, H, KV, hd = x.shape[0], self.n_heads, self.n_kv_heads, self.head_dim
        hn = rms_norm(x, L["ln1_w"], self.eps)
        q = self._lin(hn, L["q_w"], L["q_b"]).reshape(T, H, hd)
        k = self._lin(hn, L["k_w"], L["k_b"]).reshape(T, KV, hd)
        v = self._lin(hn, L["v_w"], L["v_b"]).reshape(T, KV, hd)
        q = apply_rope(q, pos, self.rope)
        k = apply_rope(k, pos, self.rope)
        mid = x + self._lin(attention(q, k, v, self.scale, self.window), L["o_w"], L["o_b"])
        hn = rms_norm(mid, L["ln2_w"], self.eps)
        g = self.act(self._lin(hn, L["gate_w"], L["gate_b"])) * self._lin(hn, L["up_w"], L["up_b"])
        return mid, mid + self._lin(g, L["down_w"], L["down_b"])

    # -- forward --------------------------------------------------------------------------------------

    def forward(self, tokens):
        """One prompt (list of ids) -> (dict point name -> [T, d] residual, logits [T, V])."""
        ids = np.asarray(tokens, dtype=np.int64)
        T = len(ids)
        if T == 0:
            raise ValueError("empty prompt")
        if ids.min() < 0 or ids.max() >= self.vocab:
            raise ValueError("token id out of range")
        if T > self.n_ctx:
            raise ValueError("prompt longer than the context")
        pos = np.arange(T)
        if self.arch == "gpt2":
            x = self.wte[ids] + self.wpe[pos]
            layer = self._layer_gpt2
        elif self.arch == "gpt_neox":
            x = self.embed[ids].copy()
            layer = self._layer_gpt_neox
        else:
            x = self.embed[ids].copy()
            layer = self._layer_llama
        out = {"embed": x}
        for i, L in enumerate(self.layers):
            mid, x = layer(x, L, pos)
            out["mid.%d" % i] = mid
            out["post.%d" % i] = x
        return out, self.logits_of(x)


def load(model_dir):
    return Model(model_dir)
