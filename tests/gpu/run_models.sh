#!/usr/bin/env bash
# run_models.sh: whole models on the CUDA backend against the CPU backend (part of `make test-gpu`).
#
# For each small random model (`logitlens synth`: every architecture, f32/f16/bf16 storage, GQA,
# partial rotary, llama3 scaling, biases, several packed prompts including a 1-token one), runs
# `logitlens run` with --backend cpu and --backend cuda on the same token ids and compares the two HDF5
# files with h5py:
#   - top-1 ids identical, except near-ties: where they differ, the CPU's probability of the CUDA top-1
#     must be within the dtype's probability bound of the CPU's top-1 probability;
#   - top-k probabilities, target probabilities, saved probability rows: |cuda - cpu| <= P_TOL;
#   - entropy and KL: |cuda - cpu| <= H_TOL + H_TOL * |cpu|;
#   - target log-probabilities: like entropy; target ranks: -1 on both or neither, and within 1 + s V
#     of each other (s: 0 for f32, 2e-3 for f16, 4e-3 for tf32 and f16w, 2e-2 for bf16: the share of the
#     vocabulary whose logits lie within the dtype's logit error of the target's).
# Bounds by storage dtype (reasons): f32: the two backends differ only in summation order (1e-3 leaves
# room for a few layers of amplification); f16: CUDA rounds every matmul's activations to f16
# (2^-11); bf16: to bf16 (2^-8), so logits move by ~1e-2 after a few layers; f32 with --tf32 on CUDA:
# the forward matmuls' products of 10-bit mantissas (both operands rounded: the rank slack of f16w), the lens
# itself in fp32 (so the final point's KL with itself is ~0 as for f32).
# GGUF models (names ending in -gguf-TYPE; BF16 is compared at the bf16 bounds, its q/k rows reordered on the
# host and uploaded as bf16): the synthesized model converted by tests/gguf_convert.py with
# every matrix in TYPE; the CUDA backend receives the dequantized tensors as f16 (docs/gguf.md) and rounds
# the activations to f16 as well: two f16 roundings per product, so the f16 bounds with twice the rank
# slack ("f16w"). Skipped, with a line, when the gguf Python package is missing.
# Prints one line per model and the first divergence; exits 1 if any model differs.
set -uo pipefail
BIN=${LOGITLENS_BIN:-build/logitlens}
PY=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/ll_models.XXXXXX")
trap 'rm -rf "$work"' EXIT

if ! "$PY" -c 'import h5py, numpy' 2>/dev/null; then
  echo "run_models: FAIL (python3 h5py and numpy are needed: bash tools/install-deps.sh)"; exit 1
fi

# name | synth flags [| extra flags for the cuda run: --tf32 compares at f16's bounds (10-bit mantissas)]
models=(
  "gpt2-f32|--arch gpt2 --layers 3 --d-model 96 --heads 4 --vocab 1000 --dtype f32"
  "gpt2-bf16|--arch gpt2 --layers 2 --d-model 64 --heads 2 --vocab 777 --dtype bf16"
  "neox-f16|--arch gpt_neox --layers 2 --d-model 80 --heads 5 --rotary-pct 0.25 --vocab 777 --dtype f16"
  "neox-seq-bf16|--arch gpt_neox --layers 2 --d-model 64 --heads 4 --parallel-residual 0 --vocab 500 --dtype bf16"
  "llama-gqa-llama3-bf16|--arch llama --layers 3 --d-model 128 --heads 8 --kv-heads 2 --vocab 5003 --rope-scaling llama3 --ctx 256 --dtype bf16"
  "llama-f32|--arch llama --layers 2 --d-model 64 --heads 4 --kv-heads 4 --vocab 700 --dtype f32"
  "mistral-hd-f16|--arch mistral --layers 2 --d-model 96 --heads 4 --kv-heads 1 --head-dim 32 --vocab 1500 --dtype f16"
  "qwen2-bias-f32|--arch qwen2 --layers 2 --d-model 64 --heads 4 --kv-heads 2 --vocab 600 --dtype f32"
  "llama-f32-tf32|--arch llama --layers 2 --d-model 64 --heads 4 --kv-heads 2 --vocab 700 --dtype f32|--tf32"
  "mistral-window-bf16|--arch mistral --layers 2 --d-model 64 --heads 4 --kv-heads 2 --sliding-window 9 --vocab 900 --dtype bf16"
  "llama-gqa-gguf-Q4_K|--arch llama --layers 2 --d-model 256 --heads 4 --kv-heads 2 --ffn 512 --vocab 700 --dtype f32"
  "gpt2-gguf-Q8_0|--arch gpt2 --layers 2 --d-model 96 --heads 4 --vocab 800 --dtype f32"
  "llama-gguf-BF16|--arch llama --layers 2 --d-model 64 --heads 4 --kv-heads 2 --vocab 600 --dtype f32"
)
here=$(cd "$(dirname "$0")" && pwd)

# compare CPU_H5 CUDA_H5 DTYPE NAME: the bounds above; prints one PASS/FAIL line.
compare() {
  "$PY" - "$@" <<'PYEOF'
import sys
import h5py, numpy as np
cpu_path, cuda_path, dtype, name = sys.argv[1:5]
P_TOL, H_TOL = {"f32": (1e-3, 2e-3), "f16": (5e-3, 1e-2), "f16w": (5e-3, 1e-2), "tf32": (5e-3, 1e-2),
                "bf16": (3e-2, 6e-2)}[dtype]
c, g = h5py.File(cpu_path, "r"), h5py.File(cuda_path, "r")
def fail(msg):
    print(f"FAIL  model {name} ({dtype}): {msg}")
    sys.exit(1)
assert c.attrs["backend"] in (b"cpu", "cpu") and g.attrs["backend"] in (b"cuda", "cuda"), "backend attributes"
assert int(g.attrs["allow_tf32"]) == (dtype == "tf32") and int(c.attrs["allow_tf32"]) == 0, "allow_tf32 attributes"
worst = {}
def close(key, tol_abs, tol_rel=0.0):
    a, b = c[key][...].astype(np.float64), g[key][...].astype(np.float64)
    if a.shape != b.shape:
        fail(f"{key}: shapes {a.shape} (cpu) and {b.shape} (cuda)")
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if (nan_a != nan_b).any():
        i = np.argwhere(nan_a != nan_b)[0]
        fail(f"{key}: NaN on one backend only at {tuple(i)}: cpu {a[tuple(i)]}, cuda {b[tuple(i)]}")
    err = np.where(nan_a, 0.0, np.abs(a - b))
    bound = tol_abs + tol_rel * np.abs(np.where(nan_a, 0.0, a))
    worst[key] = float(err.max()) if err.size else 0.0
    if (err > bound).any():
        i = tuple(np.argwhere(err > bound)[0])
        fail(f"{key}: first divergence at {i} [token, point, ...]: cpu {a[i]:.6g}, cuda {b[i]:.6g} (bound {bound[i]:.3g})")
ic, ig = c["topk_ids"][...], g["topk_ids"][...]
pc = c["topk_probs"][...]
diff = np.argwhere(ic[..., 0] != ig[..., 0])
for t, p in diff:
    gid = ig[t, p, 0]
    hit = np.nonzero(ic[t, p] == gid)[0]
    if hit.size == 0 or pc[t, p, 0] - pc[t, p, hit[0]] > P_TOL:
        q = pc[t, p, hit[0]] if hit.size else float("nan")
        fail(f"top-1 at token {t}, point {p}: cpu id {ic[t, p, 0]} (p {pc[t, p, 0]:.5f}), cuda id {gid} "
             f"(cpu p {q:.5f}): not a near-tie within {P_TOL}")
close("topk_probs", P_TOL)
close("target_probs", P_TOL)
close("target_logprobs", H_TOL, H_TOL)  # targets are mostly improbable: their log carries the signal
close("entropy", H_TOL, H_TOL)
close("kl_final", H_TOL, H_TOL)
if "probs" in c:
    close("probs", P_TOL)
rc, rg = c["target_ranks"][...].astype(np.int64), g["target_ranks"][...].astype(np.int64)
V = int(c.attrs["vocab_size"])
RANK_SLACK = 1 + {"f32": 0.0, "f16": 2e-3, "f16w": 4e-3, "tf32": 4e-3, "bf16": 2e-2}[dtype] * V  # logits within the error
if ((rc < 0) != (rg < 0)).any():
    i = tuple(np.argwhere((rc < 0) != (rg < 0))[0])
    fail(f"target_ranks at {i}: cpu {rc[i]}, cuda {rg[i]} (a target on one backend only)")
bad = np.abs(rc - rg) > RANK_SLACK
if bad.any():
    i = tuple(np.argwhere(bad)[0])
    fail(f"target_ranks at {i}: cpu {rc[i]}, cuda {rg[i]} (more than {RANK_SLACK:.0f} apart)")
kl_last = np.abs(g["kl_final"][:, -1]).max()
if kl_last > 1e-3:
    fail(f"kl_final of the final point is {kl_last:.3g} on cuda (must be ~0)")
print(f"PASS  model {name} ({dtype}): top-1 ties {len(diff)}, max |err| " +
      ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
PYEOF
}

fail=0
for m in "${models[@]}"; do
  name=${m%%|*}; rest=${m#*|}; flags=${rest%%|*}; cuda_extra=""
  [ "$rest" != "$flags" ] && cuda_extra=${rest#*|}
  dir="$work/$name"
  vocab=$(sed -E 's/.*--vocab ([0-9]+).*/\1/' <<<"$flags")
  # shellcheck disable=SC2086
  if ! "$BIN" synth $flags --tokenizer none --seed 7 --out "$dir" >"$work/synth.log" 2>&1; then
    echo "FAIL  model $name: synth failed: $(tail -1 "$work/synth.log")"; fail=1; continue
  fi
  model="$dir"
  if [[ "$name" == *-gguf-* ]]; then
    qtype=${name##*-gguf-}
    if ! "$PY" -c 'import gguf' 2>/dev/null; then
      echo "SKIP  model $name: the gguf Python package is not installed"; continue
    fi
    if ! PYTHONPATH="$here/.." "$PY" -c 'import sys, gguf_convert; gguf_convert.convert(sys.argv[1], sys.argv[2], types=sys.argv[3])' \
        "$dir" "$dir.gguf" "$qtype" >"$work/convert.log" 2>&1; then
      echo "FAIL  model $name: conversion to GGUF failed: $(tail -1 "$work/convert.log")"; fail=1; continue
    fi
    model="$dir.gguf"
  fi
  toks=$("$PY" - "$vocab" <<'PYEOF'
import random, sys
V = int(sys.argv[1]); rng = random.Random(11)
for n in (1, 7, 33, 64):
    print(",".join(str(rng.randrange(V)) for _ in range(n)))
PYEOF
)
  args=()
  while read -r t; do args+=(--tokens "$t"); done <<<"$toks"
  ok=1
  for be in cpu cuda; do
    extra=()
    # shellcheck disable=SC2206
    [ "$be" = cuda ] && extra=($cuda_extra)
    if ! "$BIN" run --model "$model" "${args[@]}" --points embed,mid,post --topk 10 --save-probs last \
        --backend "$be" "${extra[@]}" --quiet --out "$work/$name.$be.h5" >"$work/run.log" 2>&1; then
      echo "FAIL  model $name: run --backend $be failed: $(tail -1 "$work/run.log")"; ok=0; fail=1; break
    fi
  done
  [ "$ok" -eq 1 ] || continue
  dtype=$(sed -E 's/.*--dtype ([a-z0-9]+).*/\1/' <<<"$flags")
  [[ "$cuda_extra" == *--tf32* ]] && dtype=tf32
  [[ "$name" == *-gguf-* ]] && dtype=f16w
  [[ "$name" == *-gguf-BF16 ]] && dtype=bf16
  compare "$work/$name.cpu.h5" "$work/$name.cuda.h5" "$dtype" "$name" || fail=1
done
# CUDA ranks (NCCL): with 2 or more GPUs, --tp 2 (and with 4, --tp 2 --pp 2) against the CPU's one-process
# file at the same bounds, one rank per GPU under mpirun (docs/scale-out.md).
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${ngpu:-0}" -lt 2 ] || ! command -v mpirun >/dev/null; then
  echo "SKIP  ranks: ${ngpu:-0} GPU(s) here and mpirun $(command -v mpirun >/dev/null && echo present || echo missing) (CUDA ranks need 2 GPUs)"
else
  splits=("2 1"); [ "$ngpu" -ge 4 ] && splits+=("2 2")
  for name in gpt2-f32 llama-gqa-llama3-bf16; do
    [ -f "$work/$name.cpu.h5" ] || continue
    flags=$(printf '%s\n' "${models[@]}" | grep "^$name|" | cut -d'|' -f2)
    dtype=$(sed -E 's/.*--dtype ([a-z0-9]+).*/\1/' <<<"$flags")
    vocab=$(sed -E 's/.*--vocab ([0-9]+).*/\1/' <<<"$flags")
    toks=$("$PY" -c 'import random, sys
V = int(sys.argv[1]); rng = random.Random(11)
for n in (1, 7, 33, 64): print(",".join(str(rng.randrange(V)) for _ in range(n)))' "$vocab")
    args=(); while read -r t; do args+=(--tokens "$t"); done <<<"$toks"
    for sp in "${splits[@]}"; do
      read -r tp pp <<<"$sp"
      out="$work/$name.cuda-tp$tp-pp$pp.h5"
      if timeout -k 10 300 mpirun --allow-run-as-root --oversubscribe -np $((tp * pp)) \
           -x LOGITLENS_CUDA_MODULE_DIR -x LOGITLENS_MODULE_DIR "$BIN" run --model "$work/$name" "${args[@]}" \
           --points embed,mid,post --topk 10 --save-probs last --backend cuda --tp "$tp" --pp "$pp" --quiet \
           --out "$out" >"$work/ranks.log" 2>&1; then
        compare "$work/$name.cpu.h5" "$out" "$dtype" "$name --tp $tp --pp $pp" || fail=1
      else
        echo "FAIL  model $name --tp $tp --pp $pp on CUDA ranks: $(grep logitlens "$work/ranks.log" | tail -1)"; fail=1
      fi
    done
  done
fi
[ "$fail" -eq 0 ] && echo "run_models: all models agree" || echo "run_models: FAILED"
exit "$fail"
