#!/usr/bin/env bash
# make demo: synthesize a small GPT-2-shaped model with a tokenizer, run the lens over two text prompts
# and show the per-layer table and the layer x position grid.
set -euo pipefail
BIN=${1:-build/logitlens}
OUT=demo
mkdir -p "$OUT"
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
echo "(the weights are random, so the predictions are too; point --model at a real checkpoint directory)"
