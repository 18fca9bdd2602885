#!/usr/bin/env bash
# Batch search scaling (issue 23): `Db::search_batch` of the whole query set on pools of 1 and
# 2 threads, against hnswlib's and faiss's batch searches on the same threads, in alternated
# rounds on one database (one Vamana segment). Rows go to OUT/*.jsonl.
#
#   scripts/batch_bench.sh DATA_DIR OUT_DIR [ROUNDS]
#
# DATA_DIR holds base.fvecs, query.fvecs, groundtruth.ivecs (`cargo xtask gen --queries 10000`).
set -euo pipefail
data=$1 out=$2 rounds=${3:-3}
mkdir -p "$out"
cargo build --release -q -p xtask
xtask=target/xtask-batch-bench
cp target/release/xtask "$xtask"
db=$out/db
files=(--base "$data/base.fvecs" --query "$data/query.fvecs" --gt "$data/groundtruth.ivecs")
if [[ ! -d $db ]]; then
  "$xtask" bench "${files[@]}" --index engine --ingest --commit-every 100000000 --compaction full \
    --db "$db" --l 10 --json >/dev/null
fi
for round in $(seq "$rounds"); do
  for threads in 1 2; do
    "$xtask" bench "${files[@]}" --index engine --reuse --db "$db" --batch --search-threads "$threads" \
      --l 10,11,12,14,16,20 --reps 3 --json | sed "s/^/{\"round\":$round,\"row\":/; s/\$/}/" >>"$out/engine.jsonl"
  done
  for peer in hnswlib faiss-hnsw; do
    python3 scripts/peer_batch.py "${files[@]}" --peer "$peer" --search-threads 1,2 \
      --ef 10,12,16,20,24,32,48 | sed "s/^/{\"round\":$round,\"row\":/; s/\$/}/" >>"$out/$peer.jsonl"
  done
done
rm -f "$xtask"
