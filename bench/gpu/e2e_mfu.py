"""e2e_mfu.py: model FLOPs of a lens run and its utilization of the measured GEMM ceiling (used by
bench/gpu/e2e_llama8b.sh).

usage: python3 e2e_mfu.py ceiling
           prints the bf16 GEMM rate in TFLOP/s measured with torch on the lens's own shape
           ([8192 x 4096] x [4096 x 128256], fp32 accumulation), median of 10 after 3 warm-ups
       python3 e2e_mfu.py flops CONFIG.json PROMPTS.jsonl POINTS
           prints the model FLOPs of the forward pass and of the lens on POINTS points (one unembedding
           GEMM per point and token)

Model FLOPs count the useful matrix work only (the convention of MFU): per token and layer 2 x the
q/k/v/o and MLP weights, plus causal attention 2 x 2 x n(n+1)/2 x heads x head_dim per prompt of n
tokens and layer, plus the lens 2 x points x tokens x V x d. Norms, softmax statistics, the KL terms'
extra products and the logits round trip are overhead, not model FLOPs."""
import json
import sys


def model_flops(cfg, lengths, points):
    d = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", heads)
    hd = cfg.get("head_dim") or d // heads
    ff = cfg["intermediate_size"]
    layers = cfg["num_hidden_layers"]
    V = cfg["vocab_size"]
    dq, dkv = heads * hd, kv * hd
    per_token_layer = 2 * (d * (dq + 2 * dkv) + dq * d + 3 * d * ff)
    tokens = sum(lengths)
    forward = layers * (tokens * per_token_layer + sum(2 * n * (n + 1) * dq for n in lengths))
    lens = 2 * points * tokens * V * d
    return forward, lens


def ceiling():
    import torch
    M, K, N = 8192, 4096, 128256
    a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
    times = []
    for i in range(13):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        torch.matmul(a, b)
        e.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(s.elapsed_time(e) / 1e3)
    times.sort()
    return 2.0 * M * K * N / times[len(times) // 2] / 1e12


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "ceiling":
        print("%.1f" % ceiling())
    elif len(sys.argv) == 5 and sys.argv[1] == "flops":
        cfg = json.load(open(sys.argv[2]))
        lengths = [len(json.loads(line)["tokens"]) for line in open(sys.argv[3]) if line.strip()]
        fwd, lens = model_flops(cfg, lengths, int(sys.argv[4]))
        print("%.6e %.6e" % (fwd, lens))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
