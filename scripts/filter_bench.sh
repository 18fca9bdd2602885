#!/usr/bin/env bash
# Filtered search side by side (issue 19's bars): the engine at its default search settings and
# the peers under the same filters, on one data set, with attributes drawn independently of the
# vectors (uniform tags) and correlated with them (a slab of the space), from 50% down to 0.1%
# selectivity, plus compound filters. Prints JSON rows (one per engine/peer setting and filter).
#
#   scripts/filter_bench.sh [--n 100000] [--dim 128] [--metric l2] [--data DIR]
#                           [--peers "hnswlib faiss-hnsw faiss-subset"] [--only NAME,...]
#
# Needs the peers for comparison: pip install numpy hnswlib faiss-cpu.
set -euo pipefail
cd "$(dirname "$0")/.."

n=100000 dim=128 metric=l2 data="" peers="hnswlib faiss-hnsw faiss-subset" only=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --n) n=$2; shift 2 ;;
    --dim) dim=$2; shift 2 ;;
    --metric) metric=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --peers) peers=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
data=${data:-target/bench-data/clustered-$n-$dim-$metric}
# One build, then the binary: edits made while this runs do not rebuild it part-way.
cargo build --release -p xtask
xtask() { target/release/xtask "$@"; }
if [[ ! -f $data/groundtruth.ivecs ]]; then
  xtask gen --kind clustered --n "$n" --dim "$dim" --queries 1000 --metric "$metric" --out "$data"
fi
attrs=$data/attributes.jsonl
[[ -f $attrs ]] || xtask gen-attributes --base "$data/base.fvecs" --out "$attrs"
out=$data/filters
mkdir -p "$out"

# name|filter: u* independent of the vectors, c* a region of the space, the rest compound.
filters=(
  "u50|half = true"
  "u10|u10 = 3"
  "u1|tag = 't7'"
  "u01|u1000 = 7"
  "c50|pct < 500"
  "c10|pct < 100"
  "c1|pct < 10"
  "c01|pct < 1"
  "and5|half = true AND u10 < 1"
  "or2|tag IN ('t1', 't2') OR (u10 = 0 AND pct >= 990)"
)

db=$out/engine-db
files=(--base "$data/base.fvecs" --query "$data/query.fvecs" --metric "$metric" --k 10)
# The database is built once (default options, the bulk path), then every run reopens it.
if [[ ! -d $db ]]; then
  xtask bench "${files[@]}" --gt "$data/groundtruth.ivecs" --index engine --ingest \
    --attributes "$attrs" --db "$db" --l 20 --json
fi
engine() { xtask bench "${files[@]}" --index engine --reuse --db "$db" --attributes "$attrs" --l 20,40 --recall 0.95 --json "$@"; }
echo "# unfiltered" >&2
engine --gt "$data/groundtruth.ivecs"
for peer in $peers; do
  [[ $peer == faiss-subset ]] && continue
  python3 ../shared/peers/peer_bench.py "${files[@]}" --gt "$data/groundtruth.ivecs" \
    --peer "${peer}" --ef 10,20,40,80,160 --reps 1 --threads 2
done
cases=()
for entry in "${filters[@]}"; do
  name=${entry%%|*} filter=${entry#*|}
  if [[ -n $only && ,$only, != *,$name,* ]]; then continue; fi
  echo "# $name: $filter" >&2
  gt=$out/gt-$name.ivecs mask=$out/mask-$name
  [[ -f $gt ]] || xtask filtered-gt --base "$data/base.fvecs" --query "$data/query.fvecs" \
    --attributes "$attrs" --filter "$filter" --metric "$metric" --out "$gt" --mask "$mask"
  engine --gt "$gt" --filter "$filter"
  cases+=(--case "$gt" "$mask" "$filter")
done
# Each peer builds its index once and searches every filter.
# hnswlib pays a Python call per visited node under a filter: its larger lists take minutes
# per filter and add nothing (it reaches 0.99 by ef 40 wherever it can).
for peer in $peers; do
  ef=10,20,40,80,160,320
  [[ $peer == hnswlib ]] && ef=10,20,40
  python3 scripts/peer_filtered.py --base "$data/base.fvecs" --query "$data/query.fvecs" \
    --metric "$metric" --peer "$peer" --ef "$ef" "${cases[@]}"
done
