#!/usr/bin/env python3
"""The straightforward PyTorch logit lens, as a capable user would write it: the GPT-2 forward with every
layer's hidden state kept, then per layer the final LayerNorm, the unembedding, softmax, top-k, entropy,
KL to the final layer, and the target's log-probability and rank.

Used by bench/run_cpu.sh as the peer of `logitlens run` on the same model, prompts and threads. Reads the
safetensors file with numpy (memory-mapped, no copy) so loading is as cheap as logitlens's.

Two ways, both common:
  stacked    all layers' logits at once ([points, tokens, vocab], the notebook way:
             stack(hidden_states) -> ln_f -> @ W_U^T -> log_softmax);
  per-layer  one layer at a time over the whole batch (the memory-conscious way).

usage: torch_lens.py MODEL_DIR PROMPTS.jsonl THREADS [stacked|per-layer]
"""
import json
import math
import sys

import numpy as np
import torch


def load_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", "this peer handles F32 checkpoints"
        b, end = e["data_offsets"]
        out[name] = torch.from_numpy(np.asarray(data[b:end]).view(np.float32).reshape(e["shape"]))
    return out


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def main():
    model_dir, prompts_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    cfg = json.load(open(f"{model_dir}/config.json"))
    W = load_safetensors(f"{model_dir}/model.safetensors")
    d, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    prompts = [json.loads(line)["tokens"] for line in open(prompts_path) if line.strip()]
    ln = torch.nn.functional.layer_norm
    k = 10
    checksum = 0.0
    mode = sys.argv[4] if len(sys.argv) > 4 else "stacked"
    with torch.inference_mode():
        wte = W["wte.weight"]
        # all prompts have the same length here, so the batch needs no padding
        ids_t = torch.tensor(prompts)
        B, T = ids_t.shape
        x = wte[ids_t] + W["wpe.weight"][:T]
        hidden = [x]
        mask = torch.full((T, T), float("-inf")).triu(1)
        for l in range(L):
            p = f"h.{l}."
            h = ln(x, (d,), W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps)
            qkv = h @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
            q, kk, v = qkv.split(d, dim=-1)
            q = q.view(B, T, H, -1).transpose(1, 2)
            kk = kk.view(B, T, H, -1).transpose(1, 2)
            v = v.view(B, T, H, -1).transpose(1, 2)
            att = torch.softmax(q @ kk.transpose(-1, -2) / math.sqrt(d // H) + mask, dim=-1)
            a = (att @ v).transpose(1, 2).reshape(B, T, d)
            x = x + a @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
            h = ln(x, (d,), W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps)
            m = gelu_new(h @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"])
            x = x + m @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
            hidden.append(x)
        targets = torch.cat([ids_t[:, 1:], ids_t[:, -1:]], dim=1)[..., None]
        final_logp = torch.log_softmax(ln(x, (d,), W["ln_f.weight"], W["ln_f.bias"], eps) @ wte.T, dim=-1)
        final_p = final_logp.exp()

        def stats(hs):
            logits = ln(hs, (d,), W["ln_f.weight"], W["ln_f.bias"], eps) @ wte.T
            logp = torch.log_softmax(logits, dim=-1)
            probs = logp.exp()
            top_p, top_i = probs.topk(k, dim=-1)
            entropy = -(probs * logp).sum(-1)
            kl = (final_p * (final_logp - logp)).sum(-1)
            t_logit = logits.gather(-1, targets.expand(*logits.shape[:-1], 1))
            t_logp = logp.gather(-1, targets.expand(*logits.shape[:-1], 1))
            rank = (logits > t_logit).sum(-1)
            return float(top_p.sum() + entropy.sum() + kl.sum() + t_logp.sum() + rank.sum())

        if mode == "stacked":
            checksum = stats(torch.stack(hidden))
        else:
            checksum = sum(stats(hs) for hs in hidden)
    print(f"checksum {checksum:.3f}")


if __name__ == "__main__":
    main()
