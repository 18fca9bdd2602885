#!/usr/bin/env bash
# The .hdf5 input tests (xtask's `hdf5` feature), with the HDF5 C library installed from Debian's
# packages if it is missing. Skips, saying so, where it cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! pkg-config --exists hdf5 2>/dev/null && [[ ! -e /usr/include/hdf5/serial/hdf5.h ]]; then
  if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    echo "installing libhdf5-dev"
    if ! apt-get install -y -qq libhdf5-dev >/dev/null 2>&1 &&
      ! { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libhdf5-dev >/dev/null 2>&1; }; then
      echo "hdf5: libhdf5-dev could not be installed here; .hdf5 input tests skipped"
      exit 0
    fi
  else
    echo "hdf5: no HDF5 C library and no way to install it here; .hdf5 input tests skipped"
    exit 0
  fi
fi
# Debian keeps the serial build under its own directory.
export HDF5_DIR=${HDF5_DIR:-/usr/lib/x86_64-linux-gnu/hdf5/serial}
cargo clippy -q -p xtask --features hdf5 --all-targets -- -D warnings
if ! out=$(cargo test -q -p xtask --features hdf5 hdf5 2>&1); then
  echo "$out"
  echo "hdf5 input tests failed" >&2
  exit 1
fi
echo "$out" | grep -E '^test result'
