#!/usr/bin/env bash
# Runs each C test binary given as an argument; prints one line per binary and a closing count.
set -u
pass=0; fail=0
for t in "$@"; do
  if "$t"; then echo "PASS $(basename "$t")"; pass=$((pass+1)); else echo "FAIL $(basename "$t")"; fail=$((fail+1)); fi
done
echo "c-tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
