#!/usr/bin/env bash
# Miri over the `unsafe` code it can run: the aligned object buffers of strata-storage and the
# memtable's mapped arrays and row store (raw copies into published rows, slices over the
# mapping). SIMD intrinsics and file mappings are outside what Miri interprets; the kernels are
# held to their scalar references on every ISA path instead (.ci/run), and file mappings by the
# storage tests.
#
#   scripts/miri.sh
#
# Needs the nightly toolchain (skipped, saying so, without one); installs the miri component if
# it is missing and can be fetched.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "miri: no nightly toolchain here; skipped"
  exit 0
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  if ! rustup component add --toolchain nightly miri rust-src >/dev/null 2>&1; then
    echo "miri: the miri component cannot be installed here; skipped"
    exit 0
  fi
fi
# Isolation off: the test harness reads the working directory.
export MIRIFLAGS="-Zmiri-disable-isolation"
run() {
  local log
  log=$(mktemp)
  if ! cargo +nightly miri test -p "$@" >"$log" 2>&1; then
    tail -60 "$log"
    echo "miri: $1 failed" >&2
    exit 1
  fi
  grep -E '^test result' "$log"
  rm -f "$log"
}
run strata-storage --lib -- bytes::
run strata-memtable --lib -- pages:: rows::tests::vectors_round_trip rows::tests::an_empty_store
