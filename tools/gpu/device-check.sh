#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, with build/gpu carried (tools/gpu/pack.sh): the
# CUDA op tests against the CPU backend, the model suite on both backends, and the lens benchmark.
# Logs go to $OUT (the device tool's output folder) or /tmp/ll-gpu-out.
#   SANITIZE=0 skips compute-sanitizer (tests/gpu/sanitize.sh); BENCH=0 skips the benchmark; E2E=1 also runs the ~8B end-to-end comparison (needs ~16 GB of disk).
set -uo pipefail
G=build/gpu
O=${OUT:-/tmp/ll-gpu-out}
mkdir -p "$O" /tmp/ll-libs
tar -C /tmp/ll-libs -xJf "$G/libs.tar.xz"
export LD_LIBRARY_PATH=/tmp/ll-libs/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONUNBUFFERED=1
status=0
nvidia-smi -L | tee "$O/device.txt"
"$G/cuda_probe" "$G/liblogitlens_cuda.so" 2>&1 | tee -a "$O/device.txt" || status=1
echo "== test_backend_ops"
"$G/test_backend_ops" "$G/liblogitlens_cuda.so" > "$O/test_backend_ops.log" 2>&1 || status=1
grep -E "FAIL|cases|passed|failed" "$O/test_backend_ops.log" | tail -40
echo "== run_models.sh"
LOGITLENS_BIN=$PWD/$G/logitlens PYTHON=python3 bash tests/gpu/run_models.sh > "$O/run_models.log" 2>&1 || status=1
tail -30 "$O/run_models.log"
if [ "${SANITIZE:-1}" = 1 ]; then
  echo "== compute-sanitizer"
  OUT=$O bash tests/gpu/sanitize.sh "$G/liblogitlens_cuda.so" "$G/test_backend_ops" "$G/logitlens" "$G/cuda_probe" \
    || status=1
fi
if [ "${BENCH:-1}" = 1 ]; then
  echo "== bench_lens"
  "$G/bench_lens" "$G/liblogitlens_cuda.so" 2>&1 | tee "$O/bench_lens.log" || status=1
fi
if [ "${E2E:-0}" = 1 ]; then
  echo "== e2e"
  LOGITLENS_BIN=$PWD/$G/logitlens PYTHON=python3 bash bench/gpu/e2e_llama8b.sh 2>&1 | tee "$O/e2e.log" || status=1
fi
echo "device-check: $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
