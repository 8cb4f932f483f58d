#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, with build/gpu carried (tools/gpu/pack.sh; with the
# device tool: carry ["build/gpu"]): the CUDA op tests against the CPU backend, the model suite on both
# backends, the lens benchmark, then compute-sanitizer. Logs go to $OUT (the device tool's output
# folder) or /tmp/ll-gpu-out. Cheapest first, so that a session cut short still has the test results.
#   BENCH=0 skips the benchmark; SANITIZE=0 skips compute-sanitizer (tests/gpu/sanitize.sh, each step
#   limited to SAN_STEP_TIMEOUT s); E2E=1 also runs the ~8B end-to-end comparison (~16 GB of disk; it
#   does not fit a 15-minute session together with the rest).
# The packed libraries (HDF5, OpenBLAS, ...) are put on the library path of this project's programs only,
# through wrappers in /tmp/ll-bin, never of python3, nvidia-smi or compute-sanitizer.
set -uo pipefail
G=build/gpu
O=${OUT:-/tmp/ll-gpu-out}
for f in libs.tar.xz logitlens liblogitlens_cuda.so test_backend_ops cuda_probe bench_lens; do
  if [ ! -e "$G/$f" ]; then
    echo "device-check: $G/$f is missing: run tools/gpu/pack.sh here first and carry build/gpu to the GPU machine"
    exit 2
  fi
done
mkdir -p "$O" /tmp/ll-libs /tmp/ll-bin
tar -C /tmp/ll-libs -xJf "$G/libs.tar.xz" || { echo "device-check: cannot unpack $G/libs.tar.xz (xz missing?)"; exit 2; }
for b in logitlens test_backend_ops cuda_probe bench_lens; do
  printf '#!/bin/sh\nLD_LIBRARY_PATH=/tmp/ll-libs/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} exec %s "$@"\n' \
    "$PWD/$G/$b" > "/tmp/ll-bin/$b"
  chmod +x "/tmp/ll-bin/$b"
done
W=/tmp/ll-bin
MOD=$PWD/$G/liblogitlens_cuda.so
export PYTHONUNBUFFERED=1
status=0
nvidia-smi -L | tee "$O/device.txt"
"$W/cuda_probe" "$MOD" 2>&1 | tee -a "$O/device.txt" || status=1
echo
echo "== test_backend_ops"
t0=$SECONDS
"$W/test_backend_ops" "$MOD" > "$O/test_backend_ops.log" 2>&1 || status=1
grep -E "^FAIL|passed|failed" "$O/test_backend_ops.log" | tail -40
echo "($((SECONDS - t0)) s)"
echo "== run_models.sh"
t0=$SECONDS
LOGITLENS_BIN=$W/logitlens PYTHON=python3 bash tests/gpu/run_models.sh > "$O/run_models.log" 2>&1 || status=1
tail -30 "$O/run_models.log"
echo "($((SECONDS - t0)) s)"
if [ "${BENCH:-1}" = 1 ]; then
  echo "== bench_lens"
  "$W/bench_lens" "$MOD" 2>&1 | tee "$O/bench_lens.log" || status=1
fi
if [ "${SANITIZE:-1}" = 1 ]; then
  echo "== compute-sanitizer"
  OUT=$O bash tests/gpu/sanitize.sh "$MOD" "$W/test_backend_ops" "$W/logitlens" "$W/cuda_probe" || status=1
fi
if [ "${E2E:-0}" = 1 ]; then
  echo "== e2e"
  LOGITLENS_BIN=$W/logitlens PYTHON=python3 bash bench/gpu/e2e_llama8b.sh 2>&1 | tee "$O/e2e.log" || status=1
fi
echo "device-check: $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
