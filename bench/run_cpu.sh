#!/usr/bin/env bash
# CPU benchmark: logitlens against the straightforward PyTorch lens (bench/torch_lens.py) on a random
# GPT-2-small-shaped model (12 layers, d 768, vocab 50257), 8 prompts x 128 tokens, top-10 + entropy +
# KL + target on every layer (13 points), 2 threads each. Runs A B A B A B and prints medians.
# The peer needs Debian's python3-torch with libopenblas0-pthread (see ../shared BENCHMARKING notes).
set -euo pipefail
BIN=${1:-build/logitlens}
PAIRS=${PAIRS:-3}
THREADS=${THREADS:-2}
DIR=build/bench
mkdir -p "$DIR"
MODEL=$DIR/gpt2-small
if [ ! -f "$MODEL/model.safetensors" ]; then
  "$BIN" synth --arch gpt2 --layers 12 --d-model 768 --heads 12 --vocab 50257 --ctx 1024 --seed 3 \
    --tokenizer none --out "$MODEL"
fi
PROMPTS=$DIR/prompts.jsonl
/usr/bin/python3 - "$PROMPTS" <<'PY'
import json, random, sys
r = random.Random(5)
with open(sys.argv[1], "w") as f:
    for _ in range(8):
        f.write(json.dumps({"tokens": [r.randrange(50257) for _ in range(128)]}) + "\n")
PY
run_ll() { /usr/bin/time -f "%e %M" "$BIN" run --model "$MODEL" --prompts "$PROMPTS" --out "$DIR/run.h5" \
             --points embed,post --topk 10 --threads "$THREADS" --backend cpu --quiet 2>&1 | tail -1; }
run_pt() { /usr/bin/time -f "%e %M" /usr/bin/python3 bench/torch_lens.py "$MODEL" "$PROMPTS" "$THREADS" "$1" 2>&1 | tail -1; }
ll_t=(); ll_m=(); ps_t=(); ps_m=(); pl_t=(); pl_m=()
for i in $(seq "$PAIRS"); do
  read -r t m < <(run_ll); ll_t+=("$t"); ll_m+=("$m"); echo "logitlens          run $i: ${t}s  ${m} KiB"
  read -r t m < <(run_pt stacked); ps_t+=("$t"); ps_m+=("$m"); echo "pytorch stacked    run $i: ${t}s  ${m} KiB"
  read -r t m < <(run_pt per-layer); pl_t+=("$t"); pl_m+=("$m"); echo "pytorch per-layer  run $i: ${t}s  ${m} KiB"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
lt=$(median "${ll_t[@]}"); lm=$(median "${ll_m[@]}")
printf "\n%-18s %10s %12s %14s %12s %12s\n" "" "median s" "tokens/s" "peak RSS MiB" "speed-up" "memory"
printf "%-18s %10.2f %12.1f %14.0f\n" logitlens "$lt" "$(echo "1024/$lt" | bc -l)" "$(echo "$lm/1024" | bc -l)"
for peer in stacked per-layer; do
  if [ $peer = stacked ]; then pt=$(median "${ps_t[@]}"); pm=$(median "${ps_m[@]}"); else pt=$(median "${pl_t[@]}"); pm=$(median "${pl_m[@]}"); fi
  printf "%-18s %10.2f %12.1f %14.0f %11.2fx %11.2fx\n" "pytorch $peer" "$pt" "$(echo "1024/$pt" | bc -l)" \
    "$(echo "$pm/1024" | bc -l)" "$(echo "$pt/$lt" | bc -l)" "$(echo "$lm/$pm" | bc -l)"
done
echo "(goal: >= 2x the peer's throughput with <= 0.25x its peak memory)"
