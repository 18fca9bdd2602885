#!/usr/bin/env python3
"""Summarizes scripts/churn_bench.sh output (JSON lines on stdin): per mode, the engine's
churned and fresh databases side by side (recall at the default search, q/s at recall 0.95
interpolated along the --l sweep, segments, deleted rows, disk and index bytes), the rounds,
and hnswlib's recall at equal ef, churned and fresh. Where the databases were searched again
alternately (rows marked "requery"), q/s are the medians over those searches."""
import json, statistics, sys


def qps_at(points, target):
    """q/s at `target` recall, interpolated between the sweep points around it."""
    points = sorted(points)
    if points and points[0][0] >= target:
        return points[0][1]  # every setting reaches it: the cheapest one's (a lower bound)
    for (r0, q0), (r1, q1) in zip(points, points[1:]):
        if r0 <= target <= r1:
            return q0 if r1 == r0 else q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    return None


rows = [json.loads(line) for line in sys.stdin if line.startswith("{")]
for mode in ["same", "replace"]:
    rounds = [r for r in rows if r.get("churn_mode") == mode and "churn_round" in r]
    engine = [r for r in rows if r.get("index") == "engine" and r["params"].get("churn_mode") == mode]
    peer = [r for r in rows if r.get("index") == "hnswlib" and r["params"].get("churn_mode") == mode]
    if not (rounds or engine or peer):
        continue
    print(f"## {mode}")
    for r in rounds:
        print(f"round {r['churn_round']}: {r['churn_s']:.1f} s, recall {r['recall']:.4f}, {r['qps']:.0f} q/s, "
              f"{r['segments']} segments, {r['deleted_rows']} deleted, disk {r['disk_bytes'] / 1e6:.1f} MB, "
              f"index RAM {r['index_ram_bytes'] / 1e6:.2f} MB")
    for db in ["churned", "fresh"]:
        first = [r for r in engine if r["params"].get("database") == db and not r["params"].get("requery")]
        again = [r for r in engine if r["params"].get("database") == db and r["params"].get("requery")]
        if not first:
            continue
        mine = first
        if again:
            # One row per setting: the first run's, with the median q/s of the searches again.
            def key(r):
                return (r["params"].get("l"), r["params"].get("recall_target"))
            medians = {k: statistics.median(r["qps"] for r in again if key(r) == k) for k in {key(r) for r in again}}
            runs = len(again) // len(medians)
            mine = [dict(r, qps=medians.get(key(r), r["qps"])) for r in first]
            # Each alternated run is its own process that opens the database and searches:
            # its peak RSS (on the last row it prints) is what serving the database costs.
            peak = statistics.median(r["rss_bytes"] for r in again if r["params"].get("recall_target") is not None)
            print(f"engine {db}: q/s are medians of {runs} alternated runs; their peak RSS {peak / 1e6:.1f} MB")
        default = [r for r in mine if r["params"].get("recall_target") is not None]
        sweep = [(r["recall"], r["qps"]) for r in mine if r["params"].get("l") is not None]
        q95 = qps_at(sweep, 0.95)
        p = mine[0]["params"]
        print(f"engine {db}: n {mine[0]['n']}, default recall {default[0]['recall'] if default else None}"
              f" at {default[0]['qps'] if default else None} q/s, q/s at 0.95 {q95 and round(q95)}, "
              f"segments {p['segments']}, deleted {p.get('deleted_rows')}, disk {mine[0]['index_disk_bytes'] / 1e6:.1f} MB, "
              f"index RAM {mine[0]['index_ram_bytes'] / 1e6:.2f} MB, load {mine[0]['build_s']:.1f} s")
        print("   L/recall/qps: " + ", ".join(f"{r['params']['l']}:{r['recall']:.4f}/{r['qps']:.0f}"
                                             for r in mine if r["params"].get("l") is not None))
    for db in ["churned", "fresh"]:
        mine = [r for r in peer if r["params"]["database"] == db]
        if mine:
            q95 = qps_at([(r["recall"], r["qps"]) for r in mine], 0.95)
            print(f"hnswlib {db}: q/s at 0.95 {q95 and round(q95)}; ef/recall/qps: "
                  + ", ".join(f"{r['params']['ef']}:{r['recall']:.4f}/{r['qps']:.0f}" for r in mine))
