#!/usr/bin/env python3
"""hnswlib under the churn of `cargo xtask bench --churn F --churn-mode M`, side by side: the
same rounds (delete a share F of the live ids, upsert them again: with their own vectors, or
with rows the load left out), then recall and q/s at each ef, beside a fresh hnswlib index of
the same final rows. One JSON row per setting, in the shape `cargo xtask bench --json` prints.

  python3 scripts/peer_churn.py --base B.fvecs --query Q.fvecs --gt G.ivecs --metric l2 \
      --churn 0.5 --rounds 5 --mode same --ef 10,16,24,32,48,64,96,128

Deletes are `mark_deleted`; upserts are `add_items(..., replace_deleted=True)`, which reuses
deleted slots (so memory stays bounded). Re-adding under the *same* labels corrupts hnswlib's
label table (../shared/peers/README.md), so each upsert takes a fresh label, mapped back to its
id when scoring. The churned ids are a different random draw from the engine's (both uniform,
the same count per round). `replace` loads rows / (1 + F) of the file, as the engine does, and
recomputes the exact ground truth of the final rows.
"""
import argparse, json, resource, sys, time
import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype="<i4")
    dim = int(raw[0])
    rows = raw.reshape(-1, dim + 1)
    return np.ascontiguousarray(rows[:, 1:].view(dtype))


def recall(found, gt, k):
    hits = sum(len(set(map(int, f[:k])) & set(map(int, g[:k]))) for f, g in zip(found, gt))
    return hits / (len(gt) * k)


def exact_truth(vectors, query, metric, k):
    """Top-k row numbers by brute force, in blocks of queries."""
    out = np.empty((len(query), k), dtype=np.int64)
    norms = (vectors * vectors).sum(axis=1)
    for start in range(0, len(query), 256):
        q = query[start:start + 256]
        dots = q @ vectors.T
        scores = norms[None, :] - 2 * dots if metric == "l2" else -dots
        part = np.argpartition(scores, k, axis=1)[:, :k]
        order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)
        out[start:start + 256] = np.take_along_axis(part, order, axis=1)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True); ap.add_argument("--query", required=True); ap.add_argument("--gt", required=True)
    ap.add_argument("--metric", default="l2", choices=["l2", "ip", "cosine"])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--churn", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mode", default="same", choices=["same", "replace"])
    ap.add_argument("--ef", default="10,16,24,32,48,64,96,128,192,256")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    import hnswlib

    base, query, gt = read_vecs(a.base, "<f4"), read_vecs(a.query, "<f4"), read_vecs(a.gt, "<i4")
    if a.metric == "cosine":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        query = query / np.linalg.norm(query, axis=1, keepdims=True)
    n, d = base.shape
    loaded = n if a.mode == "same" else int(n / (1 + a.churn))
    space = {"l2": "l2", "ip": "ip", "cosine": "ip"}[a.metric]
    efs = [int(x) for x in a.ef.split(",")]

    def build(rows):
        idx = hnswlib.Index(space=space, dim=d)
        idx.init_index(max_elements=len(rows), M=a.m, ef_construction=a.ef_construction,
                       random_seed=100, allow_replace_deleted=True)
        t = time.perf_counter()
        idx.add_items(base[rows], np.arange(len(rows)), num_threads=a.threads)
        return idx, time.perf_counter() - t

    rows_of_ids = np.arange(loaded)
    free = np.arange(loaded, n)
    idx, build_s = build(rows_of_ids)
    label_to_id = np.arange(loaded)   # grows by one entry per upsert
    label_of_id = np.arange(loaded)
    rng = np.random.default_rng(0xC40A2E)
    churn_s = 0.0
    for _ in range(a.rounds):
        ids = np.sort(rng.choice(loaded, size=int(round(loaded * a.churn)), replace=False))
        t = time.perf_counter()
        for label in label_of_id[ids]:
            idx.mark_deleted(int(label))
        if a.mode == "replace":
            drawn = rng.choice(len(free), size=len(ids), replace=False)
            new_rows = free[drawn]
            keep = np.ones(len(free), dtype=bool); keep[drawn] = False
            free = np.concatenate([free[keep], rows_of_ids[ids]])
            rows_of_ids[ids] = new_rows
        labels = np.arange(len(label_to_id), len(label_to_id) + len(ids))
        idx.add_items(base[rows_of_ids[ids]], labels, num_threads=a.threads, replace_deleted=True)
        churn_s += time.perf_counter() - t
        label_to_id = np.concatenate([label_to_id, ids])
        label_of_id[ids] = labels
    truth = gt[:, :a.k] if a.mode == "same" else exact_truth(base[rows_of_ids], query, a.metric, a.k)
    fresh, fresh_s = build(rows_of_ids)

    for name, index, mapping, secs in [("churned", idx, label_to_id, churn_s), ("fresh", fresh, None, fresh_s)]:
        for ef in efs:
            index.set_ef(max(ef, a.k))
            best = float("inf")
            for _ in range(a.reps):
                t = time.perf_counter()
                labels, _ = index.knn_query(query, k=a.k, num_threads=1)
                best = min(best, time.perf_counter() - t)
            found = labels if mapping is None else mapping[labels]
            row = {"index": "hnswlib", "n": loaded, "dim": d, "metric": a.metric, "k": a.k, "threads": 1,
                   "params": {"m": a.m, "ef_construction": a.ef_construction, "ef": ef, "database": name,
                              "churn": a.churn, "churn_rounds": a.rounds, "churn_mode": a.mode},
                   "build_s": round(secs, 3), "recall": round(recall(found, truth, a.k), 4),
                   "qps": round(len(query) / best, 1),
                   "rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
