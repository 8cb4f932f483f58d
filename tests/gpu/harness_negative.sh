#!/usr/bin/env bash
# harness_negative.sh: the GPU tests must fail where they should (part of `make test-gpu-harness`,
# mk/gpu_harness.mk). Against the CPU stand-in module with a fixed defect of the real module brought back
# (tests/gpu/standin_cuda.c, LL_STANDIN_EMULATE), each check expects the named failure:
#   lens-tf32     "lens tf32" cases fail (lens GEMMs in TF32 under allow_tf32: lse off by ~1e-3, the final
#                 layer's KL with itself E_p[z_tf32 - z]);
#   psum-unsplit  the peaked BF16 case fails on the final layer's KL with itself (u normalized by the sum
#                 of the unsplit p while weighted by p_hi + p_lo);
#   old-driver    with a GPU present (LL_TEST_GPU_NODES pointing at an existing file) cuda_probe exits 1 and
#                 test_backend_ops fails, both saying "a GPU is present"; without one (a missing path)
#                 cuda_probe exits 2 and test_backend_ops skips (exit 0); a module that cannot be loaded
#                 at all with a GPU present fails too.
# usage: harness_negative.sh STANDIN.so TEST_BACKEND_OPS CUDA_PROBE      (logs in $OUT or a temporary dir)
set -uo pipefail
if [ $# -ne 3 ]; then echo "usage: harness_negative.sh STANDIN.so TEST_BACKEND_OPS CUDA_PROBE" >&2; exit 2; fi
MOD=$1 OPS=$2 PROBE=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ll_neg.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
O=${OUT:-$tmp}
mkdir -p "$O"
touch "$tmp/nvidia0"
status=0
ok() { echo "PASS  negative $1"; }
bad() { echo "FAIL  negative $1"; status=1; }

# check NAME EXPECTED_RC GREP_PATTERN ENV... -- COMMAND...: COMMAND (with ENV) must exit EXPECTED_RC
# ("nonzero" for any failure) and print a line matching GREP_PATTERN.
check() {
  local name=$1 want=$2 pat=$3; shift 3
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  local log="$O/neg-$name.log"
  env "${envs[@]}" "$@" >"$log" 2>&1
  local rc=$?
  if { [ "$want" = nonzero ] && [ $rc -eq 0 ]; } || { [ "$want" != nonzero ] && [ $rc -ne "$want" ]; }; then
    bad "$name: exit $rc, expected $want; see $log"; tail -3 "$log"; return
  fi
  if ! grep -qE "$pat" "$log"; then bad "$name: no line matching '$pat'; see $log"; tail -3 "$log"; return; fi
  ok "$name ($(grep -E "$pat" "$log" | head -1 | cut -c1-150))"
}

check lens-tf32 nonzero '^FAIL  lens tf32 F32' LL_STANDIN_EMULATE=lens-tf32 -- "$OPS" "$MOD" "lens tf32"
check psum-unsplit nonzero '^FAIL  lens BF16 P=1 T=64 .*KL of the final rows' LL_STANDIN_EMULATE=psum-unsplit -- \
  "$OPS" "$MOD" "lens BF16 P=1 T=64"
check probe-gpu-present 1 '^a GPU is present .* but the CUDA module cannot use it: .*driver' \
  LL_STANDIN_EMULATE=old-driver LL_TEST_GPU_NODES="$tmp/nvidia0" -- "$PROBE" "$MOD"
check probe-no-gpu 2 'driver version is insufficient' \
  LL_STANDIN_EMULATE=old-driver LL_TEST_GPU_NODES="$tmp/missing" -- "$PROBE" "$MOD"
check probe-no-module 1 '^a GPU is present .*cannot load' LL_TEST_GPU_NODES="$tmp/missing:$tmp/nvidia0" -- \
  "$PROBE" "$tmp/no-such-module.so"
check ops-gpu-present 1 '^FAIL  test_backend_ops: a GPU is present .* but the CUDA module cannot use it' \
  LL_STANDIN_EMULATE=old-driver LL_TEST_GPU_NODES="$tmp/nvidia0" -- "$OPS" "$MOD"
check ops-no-gpu 0 '^SKIP  test_backend_ops: no GPU here' \
  LL_STANDIN_EMULATE=old-driver LL_TEST_GPU_NODES="$tmp/missing" -- "$OPS" "$MOD"

echo "harness_negative: $([ $status = 0 ] && echo "every defect caught" || echo FAILED)"
exit $status
