#!/usr/bin/env bash
# bench/journal/run.sh: the cost of committing every batch durably to OUT.h5.journal (include/ll_journal.h).
#
# The CPU benchmark's model and prompts (bench/run_cpu.sh: a random GPT-2-small-shaped model, 8 prompts x
# 128 tokens, embed + every layer's output, top-10), with one batch per prompt (--batch-tokens 128, a commit
# every 128 tokens: the most commits this workload can make) and with one batch (the default 4096), run by
# the engine with the journal (WITH) and a build from before it (WITHOUT), in rotation A B A B ...; the median
# wall time of each (/usr/bin/time, loading included) and the "forward + lens" tokens per second of the
# engine's closing line.
#   bash bench/journal/run.sh WITH_BIN WITHOUT_BIN
set -euo pipefail
WITH=$(realpath "$1")
WITHOUT=$(realpath "$2")
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
DIR=build/bench
mkdir -p "$DIR"
MODEL=$DIR/gpt2-small
if [ ! -f "$MODEL/model.safetensors" ]; then
  "$WITH" synth --arch gpt2 --layers 12 --d-model 768 --heads 12 --vocab 50257 --ctx 1024 --seed 3 \
    --tokenizer none --out "$MODEL" >/dev/null
fi
PROMPTS=$DIR/prompts.jsonl
/usr/bin/python3 - "$PROMPTS" <<'PY'
import json, random, sys
r = random.Random(5)
with open(sys.argv[1], "w") as f:
    for _ in range(8):
        f.write(json.dumps({"tokens": [r.randrange(50257) for _ in range(128)]}) + "\n")
PY
one() { # BIN BATCH_TOKENS -> "wall_s tokens_per_s"
  local out
  out=$( { /usr/bin/time -f "TIME %e" "$1" run --model "$MODEL" --prompts "$PROMPTS" --out "$DIR/journal.h5" \
           --points embed,post --topk 10 --threads "$THREADS" --backend cpu --batch-tokens "$2"; } 2>&1 )
  echo "$(sed -n 's/^TIME //p' <<<"$out") $(sed -n 's/.*(\([0-9.]*\) tokens per second).*/\1/p' <<<"$out")"
}
declare -A wall tps
for r in $(seq "$ROUNDS"); do
  for bt in 128 4096; do
    for who in with without; do
      bin=$WITH; [ "$who" = without ] && bin=$WITHOUT
      read -r w t < <(one "$bin" "$bt")
      wall[$who-$bt]="${wall[$who-$bt]:-} $w"; tps[$who-$bt]="${tps[$who-$bt]:-} $t"
    done
  done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '| batches | engine | median wall s | median tokens/s | runs (tokens/s) |\n|---|---|---|---|---|\n'
for bt in 128 4096; do
  for who in with without; do
    printf '| %s | %s journal | %s | %s | %s |\n' "$([ $bt = 128 ] && echo "8 (--batch-tokens 128)" || echo "1")" \
      "$who" "$(median "${wall[$who-$bt]}")" "$(median "${tps[$who-$bt]}")" "$(echo ${tps[$who-$bt]})"
  done
done
