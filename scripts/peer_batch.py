#!/usr/bin/env python3
"""Batch search of the peers on all threads: the whole query set in one call per parameter
value, on --search-threads threads, printing the JSON rows of `cargo xtask bench --batch`.

  python3 scripts/peer_batch.py --base B.fvecs --query Q.fvecs --gt G.ivecs \
      --peer hnswlib --search-threads 1,2 --ef 10,16,24,32

hnswlib: knn_query(num_threads=T); faiss HNSW: omp_set_num_threads(T), then search;
usearch: search(threads=T). Builds use --threads threads (M 16, ef_construction 200, as in
every other comparison). Each qps is the best of --reps runs. For comparison only: the
peers are never a dependency of the project.
"""
import argparse, json, resource, sys, time

import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype="<i4")
    dim = int(raw[0])
    if dim <= 0 or raw.size % (dim + 1):
        raise SystemExit(f"{path}: not a valid vecs file")
    return np.ascontiguousarray(raw.reshape(-1, dim + 1)[:, 1:].view(dtype))


def recall(found, gt, k):
    hits = sum(len(set(map(int, f[:k])) & set(map(int, g[:k]))) for f, g in zip(found, gt))
    return hits / (len(gt) * k)


def best_of(fn, reps):
    best, out = float("inf"), None
    for _ in range(reps):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--query", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--peer", required=True, choices=["hnswlib", "faiss-hnsw", "usearch"])
    ap.add_argument("--metric", default="l2", choices=["l2", "ip", "cosine"])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2, help="build threads")
    ap.add_argument("--search-threads", default="1,2")
    ap.add_argument("--ef", default="10,16,24,32,48,64")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    base, query, gt = read_vecs(a.base, "<f4"), read_vecs(a.query, "<f4"), read_vecs(a.gt, "<i4")
    n, d = base.shape
    if a.metric == "cosine":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        query = query / np.linalg.norm(query, axis=1, keepdims=True)
    efs = [int(x) for x in a.ef.split(",")]
    params = {"m": a.m, "ef_construction": a.ef_construction}

    if a.peer == "hnswlib":
        import hnswlib
        idx = hnswlib.Index(space={"l2": "l2", "ip": "ip", "cosine": "ip"}[a.metric], dim=d)
        idx.init_index(max_elements=n, M=a.m, ef_construction=a.ef_construction, random_seed=100)
        started = time.perf_counter()
        idx.add_items(base, np.arange(n), num_threads=a.threads)
        build_s = time.perf_counter() - started

        def search(ef, threads):
            idx.set_ef(max(ef, a.k))
            return idx.knn_query(query, k=a.k, num_threads=threads)[0]
    elif a.peer == "faiss-hnsw":
        import faiss
        mt = faiss.METRIC_L2 if a.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        faiss.omp_set_num_threads(a.threads)
        idx = faiss.IndexHNSWFlat(d, a.m, mt)
        idx.hnsw.efConstruction = a.ef_construction
        started = time.perf_counter()
        idx.add(base)
        build_s = time.perf_counter() - started

        def search(ef, threads):
            faiss.omp_set_num_threads(threads)
            idx.hnsw.efSearch = max(ef, a.k)
            return idx.search(query, a.k)[1]
    else:
        from usearch.index import Index
        idx = Index(ndim=d, metric={"l2": "l2sq", "ip": "ip", "cosine": "ip"}[a.metric],
                    connectivity=a.m, expansion_add=a.ef_construction)
        started = time.perf_counter()
        idx.add(np.arange(n), base, threads=a.threads)
        build_s = time.perf_counter() - started

        def search(ef, threads):
            idx.expansion_search = max(ef, a.k)
            return idx.search(query, a.k, threads=threads).keys

    for threads in [int(x) for x in a.search_threads.split(",")]:
        for ef in efs:
            secs, labels = best_of(lambda: search(ef, threads), a.reps)
            row = {"index": a.peer, "n": n, "dim": d, "metric": a.metric, "k": a.k,
                   "threads": threads, "batch": True, "params": dict(params, ef=ef),
                   "build_s": round(build_s, 3), "recall": round(recall(labels, gt, a.k), 4),
                   "qps": round(len(query) / secs, 1), "queries": len(query),
                   "rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
