#!/usr/bin/env bash
# Side-by-side benchmark: `cargo xtask bench` and a peer from ../shared/peers/peer_bench.py on the
# same generated data, interleaved over several rounds so machine noise hits both alike. Prints
# every row, then per-side medians of qps and the ratio ours / peer.
#
#   scripts/compare.sh --index flat --peer faiss-flat [--rounds 5] [--n 100000] [--dim 128]
#                      [--metric l2] [--data DIR] [--ours "args for strata only"]
#                      [--peer-args "args for the peer only"] [-- extra args for both sides]
#
# Needs the peers: pip install numpy faiss-cpu hnswlib usearch (for comparison only).
set -euo pipefail
cd "$(dirname "$0")/.."

index=flat peer=faiss-flat rounds=5 n=100000 dim=128 metric=l2 data=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --index) index=$2; shift 2 ;;
    --peer) peer=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    --dim) dim=$2; shift 2 ;;
    --metric) metric=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --ours) ours_args=$2; shift 2 ;;
    --peer-args) peer_args=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
data=${data:-target/bench-data/clustered-$n-$dim-$metric}
peers=../shared/peers/peer_bench.py

if [[ ! -f $data/groundtruth.ivecs ]]; then
  cargo xtask gen --kind clustered --n "$n" --dim "$dim" --queries 1000 --metric "$metric" --out "$data"
fi
files=(--base "$data/base.fvecs" --query "$data/query.fvecs" --gt "$data/groundtruth.ivecs" --metric "$metric" --k 10)

rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for round in $(seq "$rounds"); do
  # shellcheck disable=SC2086 # the side-only arguments are meant to split into words
  cargo xtask bench "${files[@]}" --index "$index" --json "$@" ${ours_args:-} | tee -a "$rows"
  # shellcheck disable=SC2086
  python3 "$peers" "${files[@]}" --peer "$peer" --reps 1 "$@" ${peer_args:-} | tee -a "$rows"
done

python3 - "$rows" "$index" "$peer" <<'PY'
import json, statistics, sys
path, ours, peer = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.startswith("{")]
def key(r): return json.dumps(r["params"], sort_keys=True)
for side in (ours, peer):
    groups = {}
    for r in rows:
        if r["index"] == side:
            groups.setdefault(key(r), []).append(r)
    for params, rs in groups.items():
        print(f"{side:12} {params:40} median recall {statistics.median(r['recall'] for r in rs):.4f}  median qps {statistics.median(r['qps'] for r in rs):9.1f}  "
              f"(min {min(r['qps'] for r in rs):.1f}, max {max(r['qps'] for r in rs):.1f}, {len(rs)} runs)  "
              f"peak rss {max(r['rss_bytes'] for r in rs) / 2**20:.0f} MiB")
def curve(side):
    """(recall, median qps) per sweep point, by recall."""
    groups = {}
    for r in rows:
        if r["index"] == side:
            groups.setdefault(key(r), []).append(r)
    return sorted((statistics.median(x["recall"] for x in rs), statistics.median(x["qps"] for x in rs)) for rs in groups.values())

def qps_at(points, target):
    """qps at `target` recall, interpolating log(qps) linearly in recall between the points
    that bracket it; None if the sweep does not reach it."""
    import math
    for (r0, q0), (r1, q1) in zip(points, points[1:]):
        if r0 <= target <= r1 and r1 > r0:
            t = (target - r0) / (r1 - r0)
            return math.exp(math.log(q0) + t * (math.log(q1) - math.log(q0)))
    exact = [q for r, q in points if r == target]
    return max(exact) if exact else None

co, cp = curve(ours), curve(peer)
if len(co) > 1 and len(cp) > 1:
    for target in (0.90, 0.95, 0.99):
        a, b = qps_at(co, target), qps_at(cp, target)
        if a and b:
            print(f"qps at recall {target:.2f}: {ours} {a:9.1f}  {peer} {b:9.1f}  ratio {a / b:.3f}")
        else:
            print(f"qps at recall {target:.2f}: not reached by {'both' if not a and not b else (ours if not a else peer)}")
else:
    o = [r["qps"] for r in rows if r["index"] == ours]
    p = [r["qps"] for r in rows if r["index"] == peer]
    if len(o) == len(p) and o:
        print(f"median qps ratio {ours}/{peer}: {statistics.median(o) / statistics.median(p):.3f}")
bo = [r["build_s"] for r in rows if r["index"] == ours]
bp = [r["build_s"] for r in rows if r["index"] == peer]
if bo and bp and statistics.median(bp) > 0:
    # One build per round and side; each row of a sweep repeats its build time.
    print(f"median build seconds: {ours} {statistics.median(bo):.2f}  {peer} {statistics.median(bp):.2f}  "
          f"throughput ratio {statistics.median(bp) / statistics.median(bo):.3f}")
PY
