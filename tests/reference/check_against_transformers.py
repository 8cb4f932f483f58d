#!/usr/bin/env python3
"""Checks the float64 reference (hf_model.py, lens.py) against Hugging Face transformers itself.

Not part of CI (it needs torch and transformers). Two modes:

  python3 tests/reference/check_against_transformers.py
      builds random models with transformers' own classes (so tensor names, fused layouts and configs
      come from transformers, not from us), saves them with save_pretrained in f32/f16/bf16, single and
      sharded, and compares every residual point and the logits with transformers run in float64;
  python3 tests/reference/check_against_transformers.py DIR [DIR ...]
      compares on existing model directories (e.g. written by `logitlens synth`).

A config in the transformers-v5 spelling (rope_parameters) is also compared by rewriting it into the v4
spelling for transformers and checking the reference gives bit-identical results for both spellings.

Run it from the repository root with a Python that has torch and transformers (tested with transformers
4.46.3 and torch 1.13). Exit status 0 when every comparison is within tolerance.
"""

import copy
import json
import os
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from reference import hf_model, safetensors_io as st  # noqa: E402

# transformers run in float64 still computes two things in float32 whatever the model dtype: RMSNorm
# (LlamaRMSNorm and its copies upcast with .to(torch.float32), which narrows a float64 input) and the
# RoPE angles (inv_freq is a float32 buffer, the angles are formed under autocast(enabled=False) in
# float32). Both leave relative errors of ~1e-7 in the residual stream; models without either (gpt2)
# agree to ~1e-15. A layout or formula mistake shows up as an error of order 1.
TOL = 1e-6
TOL_EXACT = 1e-12  # gpt2: no float32 step anywhere


def _rel(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _v5_to_v4(cfg):
    """transformers-v5 rope_parameters -> v4 rope_theta + rope_scaling (for running transformers 4.x)."""
    cfg = copy.deepcopy(cfg)
    rp = cfg.pop("rope_parameters", None)
    if rp:
        rp = dict(rp)
        cfg["rope_theta"] = rp.pop("rope_theta")
        if cfg.get("model_type") == "gpt_neox":
            cfg["rotary_emb_base"] = cfg["rope_theta"]
            if "partial_rotary_factor" in rp:
                cfg["rotary_pct"] = rp.pop("partial_rotary_factor")
        if rp.get("rope_type", "default") != "default":
            cfg["rope_scaling"] = rp
        else:
            cfg["rope_scaling"] = None
    return cfg


def transformers_points(model_dir, prompts):
    """Residual points and logits from transformers (float64, eager attention) via hooks: the input of
    each decoder layer, its attention module's output, and its output."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    if "rope_parameters" in cfg:
        tmp = tempfile.mkdtemp()
        for fn in os.listdir(model_dir):
            if fn.endswith(".safetensors") or fn.endswith(".json"):
                shutil.copy(os.path.join(model_dir, fn), tmp)
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(_v5_to_v4(cfg), f)
        model_dir = tmp
    conf = AutoConfig.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, config=conf, torch_dtype=torch.float64,
                                                 attn_implementation="eager")
    model.eval()
    base = getattr(model, "transformer", None) or getattr(model, "gpt_neox", None) or model.model
    layers = getattr(base, "h", None) or getattr(base, "layers")
    results = []
    for toks in prompts:
        cap = {}
        hooks = []
        for i, layer in enumerate(layers):
            attn = getattr(layer, "attn", None) or getattr(layer, "attention", None) or layer.self_attn

            def pre(mod, args, kwargs=None, i=i):
                x = args[0] if args else kwargs["hidden_states"]
                cap["in.%d" % i] = x[0].detach().numpy().copy()

            def post(mod, args, out, i=i):
                o = out[0] if isinstance(out, tuple) else out
                cap["post.%d" % i] = o[0].detach().numpy().copy()

            def attn_out(mod, args, out, i=i):
                cap["attn.%d" % i] = out[0][0].detach().numpy().copy()

            try:
                hooks.append(layer.register_forward_pre_hook(pre, with_kwargs=True))
            except TypeError:
                hooks.append(layer.register_forward_pre_hook(lambda m, a, i=i: pre(m, a, None, i)))
            hooks.append(layer.register_forward_hook(post))
            hooks.append(attn.register_forward_hook(attn_out))
        with torch.no_grad():
            out = model(torch.tensor([toks]), use_cache=False)
        for h in hooks:
            h.remove()
        pts = {"embed": cap["in.0"]}
        for i in range(len(layers)):
            pts["mid.%d" % i] = cap["in.%d" % i] + cap["attn.%d" % i]
            pts["post.%d" % i] = cap["post.%d" % i]
        results.append((pts, out.logits[0].numpy()))
    inv_freq = None
    for _, mod in model.named_modules():
        if isinstance(getattr(mod, "inv_freq", None), torch.Tensor):
            inv_freq = mod.inv_freq.detach().double().numpy()
            break
    return results, inv_freq


def compare_dir(model_dir, prompts, label=None):
    ref = hf_model.load(model_dir)
    hf, hf_inv = transformers_points(model_dir, prompts)
    worst = 0.0
    if hf_inv is not None:
        # transformers computes inv_freq in float32: agreement to float32 precision, not better
        e = _rel(hf_model.rope_inv_freq(ref.rope), hf_inv)
        if e > 1e-6:
            print("FAIL %s rope inverse frequencies: relative error %.3g" % (label or model_dir, e))
            return False
    tol = TOL_EXACT if ref.arch == "gpt2" else TOL
    for j, toks in enumerate(prompts):
        rpts, rlog = ref.forward(toks)
        hpts, hlog = hf[j]
        for name in ref.points:
            e = _rel(rpts[name], hpts[name])
            worst = max(worst, e)
            if e > tol:
                print("FAIL %s prompt %d point %s: relative error %.3g" % (label or model_dir, j, name, e))
                return False
        e = _rel(rlog, hlog)
        worst = max(worst, e)
        if e > tol:
            print("FAIL %s prompt %d logits: relative error %.3g" % (label or model_dir, j, e))
            return False
    print("ok   %-44s %-9s worst relative error %.2e" % (label or model_dir, ref.arch, worst))
    return True


def _randomize(model, seed):
    """Replaces transformers' small init with weights large enough that every path matters."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name or "ln" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype))
            elif p.dim() == 1:
                p.copy_(0.2 * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype))
            else:
                fan_in = p.shape[-1] if "c_" not in name else p.shape[0]
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype) * (1.5 / fan_in ** 0.5))


def build_models(root):
    """Random checkpoints written by transformers' save_pretrained. Returns [(label, dir)]."""
    import torch
    from transformers import (GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig,
                              LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                              Qwen2ForCausalLM)

    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 32}
    specs = [
        ("gpt2", GPT2LMHeadModel, GPT2Config(n_embd=44, n_head=4, n_layer=3, n_positions=64, vocab_size=397),
         torch.float32, None),
        ("gpt2-f16-sharded", GPT2LMHeadModel,
         GPT2Config(n_embd=48, n_head=3, n_layer=2, n_positions=32, vocab_size=301), torch.float16, "30KB"),
        ("neox-parallel", GPTNeoXForCausalLM,
         GPTNeoXConfig(hidden_size=60, num_attention_heads=5, num_hidden_layers=2, intermediate_size=240,
                       rotary_pct=0.5, max_position_embeddings=64, vocab_size=397, use_parallel_residual=True),
         torch.float32, None),
        ("neox-sequential-bf16", GPTNeoXForCausalLM,
         GPTNeoXConfig(hidden_size=48, num_attention_heads=3, num_hidden_layers=3, intermediate_size=192,
                       rotary_pct=0.25, rotary_emb_base=500.0, max_position_embeddings=64, vocab_size=311,
                       use_parallel_residual=False), torch.bfloat16, None),
        ("llama-gqa-llama3-headdim", LlamaForCausalLM,
         LlamaConfig(hidden_size=44, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                     intermediate_size=120, num_hidden_layers=2, vocab_size=397, max_position_embeddings=64,
                     rope_theta=500000.0, rope_scaling=llama3, tie_word_embeddings=False), torch.float32, None),
        ("llama-tied-bias-bf16", LlamaForCausalLM,
         LlamaConfig(hidden_size=40, num_attention_heads=5, num_key_value_heads=5, intermediate_size=104,
                     num_hidden_layers=3, vocab_size=389, max_position_embeddings=64, tie_word_embeddings=True,
                     attention_bias=True, mlp_bias=True), torch.bfloat16, "40KB"),
        ("qwen2-bias-f16", Qwen2ForCausalLM,
         Qwen2Config(hidden_size=56, num_attention_heads=7, num_key_value_heads=1, intermediate_size=150,
                     num_hidden_layers=2, vocab_size=401, max_position_embeddings=64, tie_word_embeddings=False,
                     rope_theta=1000.0), torch.float16, None),
        ("mistral", MistralForCausalLM,
         MistralConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=172,
                       num_hidden_layers=2, vocab_size=397, max_position_embeddings=64, sliding_window=None),
         torch.float32, None),
        ("mistral-window5", MistralForCausalLM,
         MistralConfig(hidden_size=40, num_attention_heads=4, num_key_value_heads=1, intermediate_size=100,
                       num_hidden_layers=2, vocab_size=211, max_position_embeddings=64, sliding_window=5),
         torch.float32, None),
    ]
    out = []
    for i, (label, cls, conf, dtype, shard) in enumerate(specs):
        torch.manual_seed(i)
        model = cls(conf).to(torch.float64)
        _randomize(model, 100 + i)
        d = os.path.join(root, label)
        kw = {"safe_serialization": True}
        if shard:
            kw["max_shard_size"] = shard
        model.to(dtype).save_pretrained(d, **kw)
        out.append((label, d))
    # gpt2 without the "transformer." prefix (as GPT2Model checkpoints are stored)
    src = out[0][1]
    d = os.path.join(root, "gpt2-noprefix")
    os.makedirs(d)
    shutil.copy(os.path.join(src, "config.json"), d)
    raw, meta = st.read_raw(os.path.join(src, "model.safetensors"))
    st.write_raw(os.path.join(d, "model.safetensors"),
                 {n[len("transformer."):] if n.startswith("transformer.") else n: t for n, t in raw.items()},
                 metadata=meta)
    out.append(("gpt2-noprefix", d))
    # llama with the v5 rope_parameters spelling
    src = out[4][1]
    d = os.path.join(root, "llama-v5-rope")
    shutil.copytree(src, d)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    rp = dict(cfg.pop("rope_scaling"))
    rp["rope_theta"] = cfg.pop("rope_theta")
    cfg["rope_parameters"] = rp
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    out.append(("llama-v5-rope", d))
    return out


def main(argv):
    rng = np.random.default_rng(0)
    ok = True
    if argv:
        for d in argv:
            with open(os.path.join(d, "config.json")) as f:
                cfg = json.load(f)
            V = cfg.get("vocab_size", 300)
            prompts = [list(rng.integers(0, V, size=n)) for n in (1, 5, 17)]
            ok &= compare_dir(d, [[int(t) for t in p] for p in prompts])
        return 0 if ok else 1
    root = tempfile.mkdtemp(prefix="ref-vs-hf-")
    try:
        for label, d in build_models(root):
            with open(os.path.join(d, "config.json")) as f:
                V = json.load(f)["vocab_size"]
            prompts = [[int(t) for t in rng.integers(0, V, size=n)] for n in (1, 6, 19)]
            ok &= compare_dir(d, prompts, label)
        # the reference must not depend on the rope spelling
        a = hf_model.load(os.path.join(root, "llama-gqa-llama3-headdim")).forward([3, 1, 4, 1, 5, 9, 2, 6])[1]
        b = hf_model.load(os.path.join(root, "llama-v5-rope")).forward([3, 1, 4, 1, 5, 9, 2, 6])[1]
        same = np.array_equal(a, b)
        print("%s  v4 and v5 rope spellings give identical logits" % ("ok  " if same else "FAIL"))
        ok &= same
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("all comparisons passed" if ok else "SOME COMPARISONS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
