#!/usr/bin/env bash
# sanitize.sh: the CUDA backend under compute-sanitizer (`make sanitize-gpu`, and tools/gpu/device-check.sh).
#
#   memcheck   every op test of test_backend_ops (out-of-bounds and misaligned device accesses, invalid
#              frees, CUDA API errors; --leak-check full for device allocations never freed), then one
#              whole-model run (`logitlens run --backend cuda`) on a small GQA Llama in bf16;
#   racecheck  the op tests of the kernels that share data through shared memory (attention, norm) and
#              the lens (warp shuffles only, so any hazard reported there is a bug as well);
#   synccheck  the same cases: barriers reached by only part of a block.
# A reported sanitizer error makes the step fail (--error-exitcode 99); the program's own numerical
# failures are the plain run's business (test-gpu) and only noted here. racecheck and synccheck look
# at this project's kernels only (--kernel-name kns=llc_, when this compute-sanitizer has the option):
# cuBLAS's kernels are not ours to fix, and skipping them is much faster. Each step has a time limit
# (SAN_STEP_TIMEOUT, default 240 s). Runs nothing where compute-sanitizer is missing (it says so and
# exits 0) or no GPU is usable (cuda_probe's exit code 2).
#
# usage: sanitize.sh MODULE.so TEST_BACKEND_OPS LOGITLENS CUDA_PROBE      (logs in $OUT or /tmp/ll-san-out)
set -uo pipefail
if [ $# -ne 4 ]; then echo "usage: sanitize.sh MODULE.so TEST_BACKEND_OPS LOGITLENS CUDA_PROBE" >&2; exit 2; fi
MOD=$1 OPS=$2 BIN=$3 PROBE=$4
O=${OUT:-/tmp/ll-san-out}
mkdir -p "$O"

CS=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || true)}
for c in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  [ -n "$CS" ] && break
  [ -x "$c" ] && CS=$c
done
if [ -z "$CS" ]; then echo "sanitize-gpu: skipped (compute-sanitizer not found; set COMPUTE_SANITIZER)"; exit 0; fi
reason=$("$PROBE" "$MOD" 2>&1); rc=$?
if [ $rc -eq 2 ]; then echo "sanitize-gpu: skipped ($reason)"; exit 0; fi
if [ $rc -ne 0 ]; then echo "sanitize-gpu: FAIL (probe: $reason)"; exit 1; fi

status=0
OURS=()
timeout 30 "$CS" --help 2>/dev/null | grep -q -- "--kernel-name " && OURS=(--kernel-name kns=llc_)
# step NAME TOOL-ARGS... -- COMMAND...: runs COMMAND under the sanitizer, logs to $O/san-NAME.log
step() {
  local name=$1; shift
  local targs=()
  while [ "$1" != "--" ]; do targs+=("$1"); shift; done
  shift
  local log="$O/san-$name.log" rc
  local t0=$SECONDS
  timeout "${SAN_STEP_TIMEOUT:-240}" "$CS" "${targs[@]}" --error-exitcode 99 "$@" >"$log" 2>&1
  rc=$?
  local summary
  summary=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | tail -1)
  if [ $rc -eq 99 ]; then
    echo "FAIL  sanitize $name ($((SECONDS - t0)) s): $summary; see $log"
    grep -E '=========' "$log" | head -20
    status=1
  elif [ $rc -eq 124 ]; then
    echo "FAIL  sanitize $name: over ${SAN_STEP_TIMEOUT:-240} s (SAN_STEP_TIMEOUT); see $log"
    status=1
  elif [ $rc -ne 0 ] && [ -z "$summary" ]; then
    echo "FAIL  sanitize $name ($((SECONDS - t0)) s): exit $rc without a sanitizer summary; see $log"
    tail -5 "$log"
    status=1
  else
    echo "PASS  sanitize $name ($((SECONDS - t0)) s): $summary$([ $rc -ne 0 ] && echo " (the program itself exited $rc: see the plain test-gpu run)")"
  fi
}

export LL_CUDA_SYNC=1
step memcheck-ops --tool memcheck --leak-check full -- "$OPS" "$MOD"

work=$(mktemp -d "${TMPDIR:-/tmp}/ll_san.XXXXXX")
trap 'rm -rf "$work"' EXIT
if "$BIN" synth --arch llama --layers 2 --d-model 64 --heads 4 --kv-heads 2 --vocab 3001 --dtype bf16 \
     --tokenizer none --seed 5 --out "$work/m" >"$work/synth.log" 2>&1; then
  step memcheck-run --tool memcheck -- "$BIN" run --model "$work/m" --tokens 1,2,3,4,5,6,7 --tokens 9 \
    --tokens "$(seq -s, 10 80)" --points embed,mid,post --topk 40 --save-probs last --backend cuda --quiet \
    --out "$work/o.h5"
else
  echo "FAIL  sanitize memcheck-run: synth failed: $(tail -1 "$work/synth.log")"; status=1
fi

for f in attention norm lens; do
  step "racecheck-$f" --tool racecheck --racecheck-report hazard "${OURS[@]}" -- "$OPS" "$MOD" "$f"
  step "synccheck-$f" --tool synccheck "${OURS[@]}" -- "$OPS" "$MOD" "$f"
done

echo "sanitize-gpu: $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
