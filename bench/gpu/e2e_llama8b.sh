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
  "$BIN" run --model "$model" --prompts "$prompts" --points embed,post --topk 10 --backend cuda --quiet \
    --out "$WORK/ll.h5"
  t1=$(date +%s.%N)
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  echo "logitlens: wall $(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }") s (load included), peak extra device memory $(( $(cat "$WORK/peak") - base )) MiB"
}
run_hf() {
  local t0 t1
  t0=$(date +%s.%N)
  "$PY" "$here/hf_lens.py" "$model" "$prompts" --topk 10 --batch "$HF_BATCH"
  t1=$(date +%s.%N)
  echo "hf_lens: wall $(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }") s (load included)"
}

for i in $(seq "$PAIRS"); do
  echo "--- pair $i"
  run_ll
  run_hf
done
