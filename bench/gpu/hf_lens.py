"""hf_lens.py: the logit lens the straightforward PyTorch + transformers way, on the GPU (the peer of
`logitlens run --backend cuda` in bench/gpu/e2e_llama8b.sh).

usage: python3 hf_lens.py MODEL_DIR PROMPTS.jsonl [--topk 10] [--batch 4]

For each batch of prompts (all the same length here, so no padding): one forward with
output_hidden_states=True; for every hidden state (embeddings and each layer's output), the final norm
(except the last one, which transformers already returns normalized), lm_head, a float32 softmax, top-k,
entropy, the target probability and rank, and KL(p_final || p_layer). Everything stays on the GPU; the
per-layer [batch, tokens, V] logits are materialized, which is what bounds the batch size.
Prints wall time of the compute (model load excluded and reported separately) and the peak device
memory above the weights (torch.cuda.max_memory_allocated)."""
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("prompts")
    ap.add_argument("--topk", type=int, default=10)
    ap.add_argument("--batch", type=int, default=4)
    a = ap.parse_args()
    dev = torch.device("cuda")
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.bfloat16).to(dev).eval()
    torch.cuda.synchronize()
    t_load = time.perf_counter() - t0
    weights = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    prompts = [json.loads(line)["tokens"] for line in open(a.prompts)]
    norm, head = model.model.norm, model.lm_head
    checksum = 0.0
    t1 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(prompts), a.batch):
            ids = torch.tensor(prompts[i:i + a.batch], device=dev)
            hs = model(ids, output_hidden_states=True).hidden_states  # (L + 1) x [B, T, d]
            tgt = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], -1)], dim=1)
            final = head(hs[-1]).float().log_softmax(-1)  # hs[-1] is already normalized
            pf = final.exp()
            hf = -(pf * final).sum(-1)
            for li, h in enumerate(hs):
                lp = final if li == len(hs) - 1 else head(norm(h)).float().log_softmax(-1)
                p = lp.exp()
                ent = -(p * lp).sum(-1)
                top_p, top_i = p.topk(a.topk, dim=-1)
                valid = tgt >= 0
                t_lp = lp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
                rank = (lp > t_lp.unsqueeze(-1)).sum(-1)
                kl = (pf * (final - lp)).sum(-1) if li < len(hs) - 1 else torch.zeros_like(hf)
                checksum += float(ent.sum() + kl.sum() + top_p.sum() + (t_lp * valid).sum() + (rank * valid).sum())
    torch.cuda.synchronize()
    t_lens = time.perf_counter() - t1
    peak = torch.cuda.max_memory_allocated() - weights
    print(f"hf_lens: load {t_load:.2f} s, forward+lens {t_lens:.2f} s, peak device memory above the weights "
          f"{peak / 2**30:.2f} GiB (batch {a.batch}), checksum {checksum:.6g}")


if __name__ == "__main__":
    main()
