#!/usr/bin/env bash
# tests/dist/run.sh: `make test-dist` (mk/dist.mk). Environment from make: BUILD_DIR (absolute), MPI_SKIP and
# NCCL_SKIP (empty when that module was built, else the reason it was not).
#
#   unit tests      test_rank_env (launcher environments), test_rendezvous (files, timeouts, abort marks),
#                   test_world_open (module and bootstrap choices and their errors)
#   executable      build/logitlens links no MPI and runs --help where no module can be found
#   MPI             test_comm plain and under mpirun -np 1..4 (every op), with 4 KiB chunks, under
#                   LOGITLENS_DEVICE_CHECK=1; a rank that calls abort, and a rank that is SIGKILLed, end the
#                   whole job within a bound with a non-zero status. Every mpirun runs under `timeout`.
#   NCCL            with a GPU: a one-rank NCCL communicator straight from the module (test_comm --nccl-one);
#                   with >= 2 GPUs: test_comm on the CUDA backend over MPI and over a rendezvous directory, and
#                   an aborting rank; otherwise says why it skips. (Not yet run on a GPU machine.)
set -u
B=${BUILD_DIR:?BUILD_DIR not set}
T=$B/tests/dist
MPI_SKIP=${MPI_SKIP-}
NCCL_SKIP=${NCCL_SKIP-}
pass=0; fail=0
ok() { echo "PASS $1${2:+: $2}"; pass=$((pass + 1)); }
ko() { echo "FAIL $1${2:+: $2}"; fail=$((fail + 1)); }

# The tests set up their own launcher environments: none may leak in from a surrounding job.
for v in $(env | sed -n 's/^\(OMPI_[A-Za-z0-9_]*\|PMIX_[A-Za-z0-9_]*\|PMI_[A-Za-z0-9_]*\|SLURM_[A-Za-z0-9_]*\|MPI_LOCAL[A-Z]*\)=.*/\1/p'); do
  unset "$v"
done
unset LOGITLENS_JOB_ID LOGITLENS_MODULE_DIR LOGITLENS_MPI_CHUNK_BYTES LOGITLENS_DEVICE_CHECK
# OpenMPI keeps allocations until exit; under SAN=1 LeakSanitizer would report them as leaks.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
log=$(mktemp -d /tmp/ll-test-dist.XXXXXX)
trap 'rm -rf "$log"' EXIT

unit() { # name, command...
  local name=$1; shift
  if "$@" > "$log/$name.out" 2>&1; then ok "$name" "$(tail -1 "$log/$name.out")"
  else grep -v '^PASS' "$log/$name.out" | tail -20; ko "$name"; fi
}
unit test_rank_env "$T/test_rank_env"
unit test_rendezvous "$T/test_rendezvous"
wenv=()
[ -z "$MPI_SKIP" ] && wenv+=("DIST_MPI_MODULE_DIR=$B")
[ -z "$NCCL_SKIP" ] && wenv+=("DIST_NCCL_MODULE_DIR=$B")
unit test_world_open env "${wenv[@]}" "$T/test_world_open"

# The executable starts without MPI (and without CUDA): it links neither, the modules are dlopened.
n=$(ldd "$B/logitlens" | grep -c -E 'libmpi|libopen-|libnccl|libcudart' || true)
if [ "$n" = 0 ]; then ok executable_links_no_mpi_or_cuda; else ko executable_links_no_mpi_or_cuda "$(ldd "$B/logitlens" | grep -E 'mpi|nccl|cuda')"; fi
if LOGITLENS_MODULE_DIR=/nonexistent LD_LIBRARY_PATH= "$B/logitlens" --help > "$log/help.out" 2>&1; then
  ok executable_help_without_modules
else tail -5 "$log/help.out"; ko executable_help_without_modules; fi

# Runs test_comm (with the arguments in COMM_ARGS) under mpirun with N ranks; expects N summary lines, each
# with 0 failed.
COMM_ARGS=()
comm_ok() { # name, N, extra mpirun args...
  local name=$1 np=$2; shift 2
  local t0=$SECONDS
  timeout -k 5 120 mpirun --allow-run-as-root --oversubscribe -np "$np" -x LOGITLENS_MODULE_DIR="$B" "$@" \
    "$T/test_comm" "${COMM_ARGS[@]}" > "$log/$name.out" 2>&1
  local rc=$? good
  good=$(grep -c ", 0 failed" "$log/$name.out")
  if [ $rc -eq 0 ] && [ "$good" = "$np" ]; then ok "$name" "$np ranks, $(grep -m1 -o '[0-9]* checks' "$log/$name.out") each, $((SECONDS - t0)) s"
  else tail -25 "$log/$name.out"; ko "$name" "exit $rc, $good of $np ranks passed"; fi
}

# A failure mode (abort or kill) must end every rank within `bound` seconds with a non-zero status.
comm_fails() { # name, mode, N, bound
  local name=$1 mode=$2 np=$3 bound=$4
  local t0 now rc left
  t0=$(date +%s.%N)
  timeout -k 5 60 mpirun --allow-run-as-root --oversubscribe -np "$np" -x LOGITLENS_MODULE_DIR="$B" \
    "$T/test_comm" "$mode" > "$log/$name.out" 2>&1
  rc=$?
  now=$(date +%s.%N)
  left=$(pgrep -f -- "$T/test_comm $mode" | wc -l)
  local dt
  dt=$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.1f", b - a }')
  # (a hang is killed by `timeout` after 60 s, beyond the bound)
  if [ $rc -ne 0 ] && [ "$left" = 0 ] && awk -v d="$dt" -v b="$bound" 'BEGIN { exit !(d < b) }'; then
    ok "$name" "exit $rc after $dt s, no rank left"
  else tail -15 "$log/$name.out"; ko "$name" "exit $rc after $dt s (bound $bound s), $left ranks left"; fi
}

if [ -n "$MPI_SKIP" ]; then
  echo "test-dist: MPI tests skipped ($MPI_SKIP)"
elif ! command -v mpirun > /dev/null; then
  echo "test-dist: MPI tests skipped (mpirun not found: apt-get install openmpi-bin)"
else
  if LOGITLENS_MODULE_DIR=$B timeout 60 "$T/test_comm" > "$log/plain.out" 2>&1 && grep -q "rank 0 of 1 (single, cpu): .*, 0 failed" "$log/plain.out"; then
    ok comm_plain_one_rank "$(cat "$log/plain.out")"
  else tail -10 "$log/plain.out"; ko comm_plain_one_rank; fi
  for np in 1 2 3 4; do comm_ok "comm_mpirun_np$np" "$np"; done
  comm_ok comm_mpirun_np3_small_chunks 3 -x LOGITLENS_MPI_CHUNK_BYTES=4096
  comm_ok comm_mpirun_np2_device_check 2 -x LOGITLENS_DEVICE_CHECK=1 -x LOGITLENS_MPI_CHUNK_BYTES=65536
  comm_fails comm_abort_ends_job abort 3 30
  comm_fails comm_kill_ends_job kill 3 30
fi

# NCCL: one rank per GPU (NCCL refuses two ranks on one device).
if [ -n "$NCCL_SKIP" ]; then
  echo "test-dist: NCCL tests skipped ($NCCL_SKIP)"
else
  ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  if [ "${ngpu:-0}" -lt 1 ]; then
    echo "test-dist: NCCL module built; NCCL tests skipped (no GPU)"
  elif [ ! -f "$B/liblogitlens_cuda.so" ]; then
    echo "test-dist: NCCL tests skipped (no $B/liblogitlens_cuda.so to allocate device memory with)"
  else
    export LOGITLENS_CUDA_MODULE_DIR=$B
    # one GPU is enough for a one-rank NCCL communicator: the module's ops, split, rendezvous id and close
    rdv=$(mktemp -d /tmp/ll-rdv.XXXXXX)
    if LOGITLENS_MODULE_DIR=$B timeout -k 5 120 "$T/test_comm" --nccl-one --rendezvous "$rdv" > "$log/nccl-one.out" 2>&1 &&
       grep -q ", 0 failed" "$log/nccl-one.out" && [ -z "$(ls -A "$rdv")" ]; then ok comm_nccl_one_rank "$(cat "$log/nccl-one.out")"
    else tail -10 "$log/nccl-one.out"; ls -A "$rdv"; ko comm_nccl_one_rank; fi
    rm -rf "$rdv"
  fi
  if [ "${ngpu:-0}" = 1 ]; then
    echo "test-dist: NCCL multi-rank tests skipped (they need 2 GPUs, found 1)"
  elif [ "${ngpu:-0}" -ge 2 ] && [ -f "$B/liblogitlens_cuda.so" ]; then
    if [ -z "$MPI_SKIP" ]; then
      COMM_ARGS=(--backend cuda)
      comm_ok comm_nccl_over_mpi_np2 2 -x LOGITLENS_CUDA_MODULE_DIR="$B"
      COMM_ARGS=()
    fi
    # two processes started by hand as a two-task srun step without PMI: the id goes through the directory
    rdv=$(mktemp -d /tmp/ll-rdv.XXXXXX)
    for mode in ops abort; do
      pids=()
      for r in 0 1; do
        env SLURM_PROCID=$r SLURM_LOCALID=$r SLURM_STEP_NUM_TASKS=2 SLURM_STEP_TASKS_PER_NODE=2 SLURM_STEP_ID=0 \
          SLURM_JOB_ID="t$$-$mode" LOGITLENS_MODULE_DIR="$B" timeout -k 5 120 "$T/test_comm" "$mode" --backend cuda \
          --rendezvous "$rdv" --timeout 20 > "$log/rdv-$mode-$r.out" 2>&1 &
        pids+=($!)
      done
      rcs=()
      for p in "${pids[@]}"; do wait "$p"; rcs+=($?); done
      if [ "$mode" = ops ]; then
        if [ "${rcs[0]}" = 0 ] && [ "${rcs[1]}" = 0 ]; then ok comm_nccl_rendezvous_np2
        else cat "$log"/rdv-ops-*.out | tail -20; ko comm_nccl_rendezvous_np2 "exits ${rcs[*]}"; fi
      else # rank 1 aborts (exit 3), rank 0 sees the abort mark and returns an error (exit 4)
        if [ "${rcs[1]}" = 3 ] && [ "${rcs[0]}" = 4 ] && grep -q "aborted" "$log/rdv-abort-0.out"; then ok comm_nccl_abort_mark
        else cat "$log"/rdv-abort-*.out | tail -20; ko comm_nccl_abort_mark "exits ${rcs[*]}"; fi
      fi
    done
    rm -rf "$rdv"
  fi
fi

echo "test-dist: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
