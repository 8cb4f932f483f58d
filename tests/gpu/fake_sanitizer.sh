#!/usr/bin/env bash
# fake_sanitizer.sh: stands in for compute-sanitizer in `make test-gpu-harness` (mk/gpu_harness.mk) so that
# tests/gpu/sanitize.sh's own logic (option probing, steps, exit codes, logs) runs without a GPU: answers
# --help with the options sanitize.sh probes for, otherwise skips the sanitizer options, runs the program,
# prints a clean summary and returns the program's exit code. FAKE_SANITIZER_ERRORS=1 reports one error and
# exits with the --error-exitcode value instead.
if [ "${1:-}" = "--help" ]; then echo "  --kernel-name arg"; exit 0; fi
code=1
while [ $# -gt 0 ] && [ "$1" != "--error-exitcode" ]; do shift; done
[ $# -ge 2 ] && code=$2 && shift 2
"$@"
rc=$?
if [ "${FAKE_SANITIZER_ERRORS:-0}" = 1 ]; then
  echo "========= Invalid __global__ read of size 4 bytes (fake)"
  echo "========= ERROR SUMMARY: 1 error"
  exit "$code"
fi
echo "========= ERROR SUMMARY: 0 errors"
exit $rc
