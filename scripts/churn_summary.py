#!/usr/bin/env python3
"""Summarizes scripts/churn_bench.sh output (JSON lines on stdin): per mode, the engine's
churned and fresh databases side by side (recall at the default search, q/s at recall 0.95
interpolated along the --l sweep, segments, deleted rows, disk and index bytes), the rounds,
and hnswlib's recall at equal ef, churned and fresh."""
import json, sys


def qps_at(points, target):
    """q/s at `target` recall, interpolated between the sweep points around it."""
    points = sorted(points)
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
        mine = [r for r in engine if r["params"].get("database") == db]
        if not mine:
            continue
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
