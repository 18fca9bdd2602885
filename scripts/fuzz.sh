#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (every decoder: manifest, deletion vector, framing
# footer, flat and Vamana segments, codebook, filter text, attribute sections), each for a
# bounded time, from seed corpora of real objects (`cargo xtask fuzz-corpus`).
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]     default: 20 seconds each, every target
#   scripts/fuzz.sh 600                        the 10-minute run docs/BENCHMARKS.md records
#
# Needs the nightly toolchain (skipped, saying so, without one); installs cargo-fuzz if it is
# missing. A finding stops the run with a non-zero status; libFuzzer leaves the input under
# fuzz/artifacts/TARGET/ and `cargo +nightly fuzz run TARGET FILE` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain here; skipped"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked --quiet
fi

cargo run --quiet -p xtask -- fuzz-corpus --out fuzz/corpus
build_log=$(mktemp)
if ! cargo +nightly fuzz build >"$build_log" 2>&1; then
  tail -60 "$build_log"
  echo "fuzz: the targets did not build" >&2
  exit 1
fi
rm -f "$build_log"
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
for target in "${targets[@]}"; do
  log=$(mktemp)
  # -malloc_limit_mb: a single allocation past 1 GiB is a finding (a length field trusted);
  # -timeout: one input running 10 s is a finding (a hang).
  if ! cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz $target: FINDING (input under fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  echo "fuzz $target: ${runs:-?} runs in ${seconds} s, no finding"
  rm -f "$log"
done
