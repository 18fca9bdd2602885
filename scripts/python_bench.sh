#!/usr/bin/env bash
# The Python module's bars (issue 24), in one run on one machine:
#   1. parity: `cargo xtask bench-bindings` (Rust) and python/bench/bench_bindings.py (the same
#      calls through the module) alternated ROUNDS times: one upsert_batch of the base set into a
#      fresh database; search_batch of 1,000 queries; one search per query in a loop;
#   2. side by side: the module's batch search over a sweep of L on one thread, and hnswlib's
#      and usearch's Python APIs (../shared/peers/peer_bench.py, one search thread each).
#
#   scripts/python_bench.sh [DATA_DIR] [OUT_DIR] [ROUNDS]
#
# DATA_DIR holds base.fvecs, query.fvecs and groundtruth.ivecs (`cargo xtask gen`); default the
# 100k x 128 clustered set. Builds the release module into target/python-bench-venv (with
# numpy, hnswlib, usearch) and the searched database (bulk-load, then one compaction into a
# Vamana segment) under OUT_DIR. Prints JSON rows; scripts/python_bench_summary.py reduces them.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-target/bench-data/clustered-100000-128-l2}
out=${2:-target/python-bench}
rounds=${3:-5}
venv=target/python-bench-venv
peers=${PEER_BENCH:-../shared/peers/peer_bench.py}
mkdir -p "$out"

if [[ ! -x $venv/bin/python ]]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check numpy hnswlib usearch
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check ./python
cargo build -q --release -p xtask
xtask=$out/xtask
cp target/release/xtask "$xtask"

base=(--base "$data/base.fvecs" --query "$data/query.fvecs" --gt "$data/groundtruth.ivecs")
db=$out/db
if [[ ! -d $db ]]; then
  # One ingest of every row, compacted in full: one Vamana segment.
  $xtask bench "${base[@]}" --index engine --ingest --commit-every 100000000 --compaction full \
    --db "$db" --l 10 --json >/dev/null
fi
$xtask inspect --db "$db" >&2
for round in $(seq "$rounds"); do
  echo "round $round" >&2
  $xtask bench-bindings "${base[@]}" --db "$db" --scratch "$out/scratch-rust" --queries 1000
  "$venv/bin/python" python/bench/bench_bindings.py "${base[@]}" --db "$db" \
    --scratch "$out/scratch-python" --queries 1000 --python-threads 2
done
"$venv/bin/python" python/bench/bench_bindings.py "${base[@]}" --db "$db" --scratch unused \
  --threads 1 --sweep 10,12,16,20,24,32,48,64 --reps 5
for peer in hnswlib usearch; do
  "$venv/bin/python" "$peers" "${base[@]}" --peer "$peer" --metric l2 --k 10 --m 16 \
    --ef-construction 200 --threads 2 --ef 10,16,20,24,32,48,64 --reps 5
done
