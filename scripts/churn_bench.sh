#!/usr/bin/env bash
# Churn side by side (issue 20's bars): the engine after N rounds of deleting and upserting a
# share of its ids, in both modes, each beside a fresh database of the same final rows (the
# bench loads one itself), then hnswlib under the same churn beside its own fresh build.
# Prints JSON rows: per churn round, then per search setting of each database;
# scripts/churn_summary.py turns them into the figures docs/BENCHMARKS.md quotes.
#
#   scripts/churn_bench.sh [--n 100000] [--dim 128] [--metric l2] [--churn 0.5] [--rounds 5]
#                          [--modes "same replace"] [--peers hnswlib|none] [--keep-versions 1]
#                          [--alternate 3]
#
# `same` uses the n-row set; `replace` a set of n * (1 + churn) rows, of which the bench loads
# n and draws the replacements from the rest. Both are generated if missing.
# Needs the peer for comparison: pip install numpy hnswlib.
set -euo pipefail
cd "$(dirname "$0")/.."

n=100000 dim=128 metric=l2 churn=0.5 rounds=5 modes="same replace" peers="hnswlib" keep=1 alternate=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --n) n=$2; shift 2 ;;
    --dim) dim=$2; shift 2 ;;
    --metric) metric=$2; shift 2 ;;
    --churn) churn=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --peers) peers=$2; shift 2 ;;
    --keep-versions) keep=$2; shift 2 ;;
    --alternate) alternate=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
# One build, then a copy of the binary: edits made while this runs do not change it part-way.
cargo build --release -p xtask >&2
bin=$(mktemp -d)/xtask
cp target/release/xtask "$bin"
for mode in $modes; do
  rows=$n
  if [[ $mode == replace ]]; then
    rows=$(python3 -c "import math; print(math.ceil($n * (1 + $churn)))")
  fi
  data=target/bench-data/clustered-$rows-$dim-$metric
  if [[ ! -f $data/groundtruth.ivecs ]]; then
    "$bin" gen --kind clustered --n "$rows" --dim "$dim" --queries 1000 --metric "$metric" --out "$data" >&2
  fi
  db=target/bench-db/churn-$mode-$dim
  rm -rf "$db" "$db.fresh"
  "$bin" bench --base "$data/base.fvecs" --query "$data/query.fvecs" --gt "$data/groundtruth.ivecs" \
    --metric "$metric" --k 10 --index engine --ingest --db "$db" --keep-versions "$keep" \
    --churn "$churn" --churn-rounds "$rounds" --churn-mode "$mode" --write-gt "$db.gt.ivecs" \
    --l 10,12,16,20,24,32,48,64 --recall 0.95 --reps 3 --json
  # q/s moves by 2x between runs on a shared machine: the two databases are searched again
  # --alternate times each, alternately, and the summary takes medians (rows marked "requery").
  for ((i = 0; i < alternate; i++)); do
    for which in churned fresh; do
      dir=$db; [[ $which == fresh ]] && dir=$db.fresh
      "$bin" bench --base "$data/base.fvecs" --query "$data/query.fvecs" --gt "$db.gt.ivecs" \
        --metric "$metric" --k 10 --index engine --reuse --db "$dir" \
        --l 10,12,16,20,24,32,48,64 --recall 0.95 --reps 3 --json |
        python3 -c "import json, sys
for line in sys.stdin:
    row = json.loads(line); row['params'].update(database='$which', churn_mode='$mode', requery=True)
    print(json.dumps(row))"
    done
  done
  # Both databases stay, to be measured again: bench --reuse --db DIR (and DIR.fresh).
  if [[ $peers == *hnswlib* ]]; then
    python3 scripts/peer_churn.py --base "$data/base.fvecs" --query "$data/query.fvecs" \
      --gt "$data/groundtruth.ivecs" --metric "$metric" --churn "$churn" --rounds "$rounds" \
      --mode "$mode" --ef 10,16,24,32,48,64,96,128
  fi
done
