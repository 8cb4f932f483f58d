#!/usr/bin/env bash
# bench/ranks/run.sh: tokens per second of 1, 2 and 4 CPU ranks (mpirun) on the same model, and what rank 0
# hands to its communicators per token and layer against the formula 2 x d_model x 4 bytes.
#
# Model: a random Llama-shaped model written by `logitlens synth` (8 layers, d 512, 8 heads / 4 KV heads,
# MLP 1536, vocabulary 16000, bf16), 16 prompts x 64 random tokens, the lens at every layer's output,
# top-10. Each configuration runs 3 times in rotation (A B C ... A B C ...); the median "forward + lens"
# tokens per second of the engine's closing line is reported (weights loading excluded).
#   bash bench/ranks/run.sh [build/logitlens]
set -euo pipefail
BIN=$(realpath "${1:-build/logitlens}")
ROUNDS=${ROUNDS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$BIN" synth --arch llama --out "$work/m" --layers 8 --d-model 512 --heads 8 --kv-heads 4 --ffn 1536 \
  --vocab 16000 --ctx 128 --dtype bf16 --tokenizer none --seed 7 >/dev/null
python3 - "$work/p.jsonl" <<'PY'
import json, random, sys
random.seed(3)
with open(sys.argv[1], "w") as f:
    for _ in range(16):
        f.write(json.dumps({"tokens": [random.randrange(16000) for _ in range(64)]}) + "\n")
PY
cores=$(nproc)
args=(run --model "$work/m" --prompts "$work/p.jsonl" --backend cpu --topk 10 --points post --batch-tokens 1024)
# name | ranks | split | threads per rank
configs=("1 rank|1||$cores" "tp2|2|--tp 2|$(( cores / 2 > 0 ? cores / 2 : 1 ))" "pp2|2|--pp 2|$(( cores / 2 > 0 ? cores / 2 : 1 ))"
         "tp4|4|--tp 4|1" "tp2 x pp2|4|--tp 2 --pp 2|1" "pp4|4|--pp 4|1")
declare -A tps comm
for round in $(seq "$ROUNDS"); do
  for c in "${configs[@]}"; do
    IFS='|' read -r name n split threads <<<"$c"
    if [ "$n" = 1 ]; then
      out=$("$BIN" "${args[@]}" --out "$work/o.h5" --threads "$threads" 2>&1)
    else
      # shellcheck disable=SC2086
      out=$(mpirun --allow-run-as-root --oversubscribe -np "$n" "$BIN" "${args[@]}" --out "$work/o.h5" \
              --threads "$threads" $split 2>&1)
    fi
    t=$(sed -n 's/.*(\([0-9.]*\) tokens per second).*/\1/p' <<<"$out")
    tps[$name]="${tps[$name]:-} $t"
    c0=$(sed -n 's/.*forward all-reduce \([0-9]*\) bytes per token and layer.*lens exchange \([0-9]*\) bytes per token, pipeline \([0-9]*\) bytes.*/\1 \2 \3/p' <<<"$out")
    comm[$name]="$c0"
  done
done
printf '| configuration | ranks | threads per rank | median tokens/s | runs | rank 0 forward all-reduce B/token/layer | lens exchange B/token | pipeline B/token |\n|---|---|---|---|---|---|---|---|\n'
for c in "${configs[@]}"; do
  IFS='|' read -r name n split threads <<<"$c"
  med=$(tr ' ' '\n' <<<"${tps[$name]}" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  read -r fa lx pl <<<"${comm[$name]:-- - -}"
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$n" "$threads" "$med" "$(echo ${tps[$name]})" "$fa" "$lx" "$pl"
done
echo "formula: forward all-reduce payload per token and layer = 2 x d_model x 4 = $((2 * 512 * 4)) bytes (with --tp > 1)"
