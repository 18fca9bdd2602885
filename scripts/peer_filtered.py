#!/usr/bin/env python3
"""Filtered search by the peers, side by side with `cargo xtask bench --filter`: the same
base, queries and filtered ground truth (`cargo xtask filtered-gt ... --mask M`), one JSON
row per search setting in the shape `cargo xtask bench --json` prints.

  python3 scripts/peer_filtered.py --base B.fvecs --query Q.fvecs --peer hnswlib \
      --case G1.ivecs M1 "u10 = 3" --case G2.ivecs M2 "tag = 't7'" --metric l2 --ef 10,20,40

The index is built once; each --case (ground truth, mask, filter text) is then searched.

Peers (see ../shared/peers/README.md on fairness):
  hnswlib      its `filter=` callback (one Python call per visited node: a floor, not a peak)
  faiss-hnsw   IDSelectorBitmap applied inside the C++ graph walk
  faiss-subset an exact scan of only the matching rows (IndexFlat over base[mask])
Searches run on one thread, one query at a time for hnswlib (a query with fewer matches
than k raises there), one batch for faiss. Recall@k counts only valid (non -1) entries.
"""
import argparse, json, sys, time
import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype="<i4")
    dim = int(raw[0])
    rows = raw.reshape(-1, dim + 1)
    return np.ascontiguousarray(rows[:, 1:].view(dtype))


def recall(found, gt, k):
    hits = wanted = 0
    for f, g in zip(found, gt):
        valid = set(int(x) for x in g[:k] if x >= 0)
        wanted += len(valid)
        hits += len(valid & set(int(x) for x in f[:k] if x >= 0))
    return hits / wanted if wanted else 1.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True); ap.add_argument("--query", required=True)
    ap.add_argument("--case", nargs=3, action="append", required=True, metavar=("GT", "MASK", "FILTER"))
    ap.add_argument("--peer", required=True, choices=["hnswlib", "faiss-hnsw", "faiss-subset"])
    ap.add_argument("--metric", default="l2", choices=["l2", "ip", "cosine"])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2, help="build threads")
    ap.add_argument("--ef", default="10,20,40,80,160,320,640")
    a = ap.parse_args()
    base, query = read_vecs(a.base, "<f4"), read_vecs(a.query, "<f4")
    cases = [(read_vecs(g, "<i4"), np.fromfile(m, dtype=np.uint8).astype(bool), f) for g, m, f in a.case]
    n, d = base.shape
    for _, mask, f in cases:
        if mask.shape[0] != n:
            sys.exit(f"mask of {f!r} has {mask.shape[0]} rows for {n} base rows")
    if a.metric == "cosine":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        query = query / np.linalg.norm(query, axis=1, keepdims=True)
    k = a.k
    common = {"dim": d, "n": n, "k": k, "metric": a.metric, "queries": len(query), "threads": 1}
    t = time.perf_counter()
    if a.peer == "hnswlib":
        import hnswlib
        space = {"l2": "l2", "ip": "ip", "cosine": "ip"}[a.metric]
        index = hnswlib.Index(space=space, dim=d)
        index.init_index(max_elements=n, M=a.m, ef_construction=a.ef_construction)
        index.set_num_threads(a.threads)
        index.add_items(base, np.arange(n))
        index.set_num_threads(1)
    elif a.peer == "faiss-hnsw":
        import faiss
        faiss.omp_set_num_threads(a.threads)
        metric = faiss.METRIC_L2 if a.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        index = faiss.IndexHNSWFlat(d, a.m, metric)
        index.hnsw.efConstruction = a.ef_construction
        index.add(base)
        faiss.omp_set_num_threads(1)
    else:
        import faiss
        faiss.omp_set_num_threads(1)
    build_s = time.perf_counter() - t
    for gt, mask, text in cases:
        rows = []
        if a.peer == "hnswlib":
            allowed = mask.tolist()
            keep = lambda label: allowed[label]
            for ef in map(int, a.ef.split(",")):
                index.set_ef(max(ef, k))
                found = []
                t = time.perf_counter()
                for q in query:
                    try:
                        labels, _ = index.knn_query(q, k=k, filter=keep)
                        found.append(labels[0])
                    except RuntimeError:  # fewer than k matches reached
                        found.append(np.full(k, -1))
                secs = time.perf_counter() - t
                rows.append(({"ef": ef, "M": a.m}, found, secs))
        elif a.peer == "faiss-hnsw":
            bits = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
            for ef in map(int, a.ef.split(",")):
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(ef, k))
                t = time.perf_counter()
                _, labels = index.search(query, k, params=params)
                secs = time.perf_counter() - t
                rows.append(({"ef": ef, "M": a.m}, labels, secs))
        else:
            ids = np.nonzero(mask)[0]
            flat = faiss.IndexFlatL2(d) if a.metric == "l2" else faiss.IndexFlatIP(d)
            flat.add(np.ascontiguousarray(base[ids]))
            t = time.perf_counter()
            found = []
            for q in query:  # one query per call, as a planner's scan runs
                _, sub = flat.search(q.reshape(1, -1), k)
                found.append(np.where(sub[0] >= 0, ids[np.maximum(sub[0], 0)], -1))
            secs = time.perf_counter() - t
            rows.append(({}, found, secs))
        for params, found, secs in rows:
            params = dict(params, filter=text, selectivity=round(float(mask.mean()), 6))
            out = dict(common, index=a.peer, params=params, build_s=round(build_s, 3),
                       recall=round(recall(found, gt, k), 4), qps=round(len(query) / secs, 1))
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
