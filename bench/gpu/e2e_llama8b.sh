#!/usr/bin/env bash
# e2e_llama8b.sh: `logitlens run --backend cuda` against the PyTorch + transformers lens (hf_lens.py) on
# the same random Llama-architecture model of ~8B parameters in bf16, 16 prompts x 512 tokens, every
# layer's output and the embeddings (33 points), top-10, entropy, target probability and rank, KL to the
# final layer. Reports wall time and peak extra device memory of both, alternating A B A B (PAIRS pairs).
#
# env: LOGITLENS_BIN (default build/logitlens), PYTHON (python3), WORK (/tmp/ll_e2e: the model, 16 GB),
#      PAIRS (2), HF_BATCH (4: prompts per forward for hf_lens.py; each layer's logits are materialized)
# Peak extra device memory of logitlens: nvidia-smi's memory.used sampled every 100 ms, minus the value
# before the run (it includes the CUDA context, ~0.5 GB); of hf_lens.py: torch's own peak above the weights.
# Model FLOPs utilization (e2e_mfu.py): forward + lens model FLOPs over each tool's compute time (load
# excluded: logitlens's final line, hf_lens.py's forward+lens time), against the bf16 GEMM rate torch
# measures on the lens's shape in the same session (the ceiling).
set -euo pipefail
BIN=${LOGITLENS_BIN:-build/logitlens}
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/ll_e2e}
PAIRS=${PAIRS:-2}
HF_BATCH=${HF_BATCH:-4}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$WORK"
model="$WORK/llama8b"
if [ ! -f "$model/config.json" ]; then
  echo "e2e: synthesizing the model into $model (about 16 GB)"
  "$BIN" synth --arch llama --layers 32 --d-model 4096 --heads 32 --kv-heads 8 --ffn 14336 --vocab 128256 \
    --dtype bf16 --tokenizer none --shards 4 --out "$model"
fi
prompts="$WORK/prompts.jsonl"
"$PY" - "$prompts" <<'PYEOF'
import json, random, sys
rng = random.Random(5)
with open(sys.argv[1], "w") as f:
    for _ in range(16):
        f.write(json.dumps({"tokens": [rng.randrange(128000) for _ in range(512)]}) + "\n")
PYEOF

gpu_mem() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 | head -1; }

run_ll() {
  local base peak pid t0 t1
  base=$(gpu_mem)
  echo "$base" >"$WORK/peak"
  ( peak=0; while :; do m=$(gpu_mem); [ "$m" -gt "$peak" ] && peak=$m && echo "$peak" >"$WORK/peak"; sleep 0.1; done ) &
  pid=$!
  t0=$(date +%s.%N)
  local rc=0
  LOGITLENS_PROGRESS_DELAY=100000 "$BIN" run --model "$model" --prompts "$prompts" --points embed,post --topk 10 \
    --backend cuda --out "$WORK/ll.h5" 2>"$WORK/ll.log" || rc=$?
  t1=$(date +%s.%N)
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true  # the sampler stops whatever the run's outcome
  if [ $rc -ne 0 ]; then echo "logitlens: run failed (exit $rc): $(tail -1 "$WORK/ll.log")"; return 1; fi
  local run_s
  run_s=$(sed -nE 's/.*forward \+ lens ([0-9.]+) s.*/\1/p' "$WORK/ll.log" | tail -1)
  echo "logitlens: wall $(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }") s (load included), forward + lens ${run_s} s, $(mfu "$run_s"), peak extra device memory $(( $(cat "$WORK/peak") - base )) MiB"
}
# mfu SECONDS: model FLOPs utilization of a compute time against the measured GEMM ceiling
mfu() {
  awk -v s="$1" -v f="$FLOPS" -v c="$CEIL" 'BEGIN { if (s > 0) printf "%.1f TFLOP/s = %.1f%% of the %.0f TFLOP/s GEMM ceiling", f / s / 1e12, 100 * f / s / 1e12 / c, c; else printf "no compute time" }'
}
run_hf() {
  local t0 t1
  t0=$(date +%s.%N)
  "$PY" "$here/hf_lens.py" "$model" "$prompts" --topk 10 --batch "$HF_BATCH" | tee "$WORK/hf.log"
  t1=$(date +%s.%N)
  local run_s
  run_s=$(sed -nE 's/.*forward\+lens ([0-9.]+) s.*/\1/p' "$WORK/hf.log" | tail -1)
  echo "hf_lens: wall $(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }") s (load included), $(mfu "$run_s")"
}

read -r FWD LENS < <("$PY" "$here/e2e_mfu.py" flops "$model/config.json" "$prompts" 33)
FLOPS=$(awk -v a="$FWD" -v b="$LENS" 'BEGIN { printf "%.6e", a + b }')
CEIL=$("$PY" "$here/e2e_mfu.py" ceiling)
echo "e2e: model FLOPs: forward $FWD + lens $LENS (33 points); bf16 GEMM ceiling (torch, [8192x4096]x[4096x128256]) $CEIL TFLOP/s"

for i in $(seq "$PAIRS"); do
  echo "--- pair $i"
  run_ll
  run_hf
done
