#!/bin/sh
# spec/run.sh - runs every busted spec under LuaJIT and ends with the line
# "N passed, N failed" (errors count as failures). Extra arguments go to busted.
# SANITIZE=1 runs against build-san/ (AddressSanitizer + UBSan) with the runtimes preloaded.
cd "$(dirname "$0")/.." || exit 2
if [ "${SANITIZE:-0}" = 1 ]; then
  export NNLUA_BUILD=build-san
  LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
  export LD_PRELOAD
  # LuaJIT itself is not instrumented: its allocator and JIT confuse leak detection.
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
out=$(mktemp)
busted -o plainTerminal "$@" 2>&1 | tee "$out"
status=$?
summary=$(grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$out" | tail -1)
rm -f "$out"
if [ -z "$summary" ]; then
  echo "busted did not finish (exit $status)"
  echo "0 passed, 1 failed"
  exit 1
fi
passed=$(echo "$summary" | sed -E 's/^([0-9]+) success.*/\1/')
failures=$(echo "$summary" | sed -E 's/.* ([0-9]+) failures? .*/\1/')
errors=$(echo "$summary" | sed -E 's/.* ([0-9]+) errors? .*/\1/')
pending=$(echo "$summary" | sed -E 's/.* ([0-9]+) pending.*/\1/')
failed=$((failures + errors))
if [ "$pending" -gt 0 ]; then
  echo "$passed passed, $failed failed, $pending skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
