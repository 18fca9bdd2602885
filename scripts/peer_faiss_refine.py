#!/usr/bin/env python3
"""faiss IVF-PQ + refine over a range of refine factors (peer_bench.py fixes k_factor at 10).

    python3 scripts/peer_faiss_refine.py target/bench-data/clustered-1000000-128-l2

Builds peer_bench.py's index (IVF 4*sqrt(n), PQ dim/4 x 4-bit fast scan, exact refine) on two
threads, then searches on one thread for each k_factor and nprobe, best of 3, and prints one JSON
row per setting. L2 only. For comparison only: needs `pip install numpy faiss-cpu`.
"""
import sys
import time

import faiss
import numpy as np


def vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:, 1:].view(dtype).copy()


data = sys.argv[1]
base = vecs(f"{data}/base.fvecs", np.float32)
query = vecs(f"{data}/query.fvecs", np.float32)
truth = vecs(f"{data}/groundtruth.ivecs", np.int32)
n, d = base.shape
nlist = max(16, int(4 * np.sqrt(n)))
faiss.omp_set_num_threads(2)
index = faiss.index_factory(d, f"IVF{nlist},PQ{d // 4}x4fs,RFlat", faiss.METRIC_L2)
start = time.perf_counter()
index.train(base)
index.add(base)
build_s = time.perf_counter() - start
faiss.omp_set_num_threads(1)
for k_factor in (10, 50, 100, 200):
    for nprobe in (16, 32, 64):
        faiss.extract_index_ivf(index).nprobe = nprobe
        index.k_factor = k_factor
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            _, labels = index.search(query, 10)
            best = min(best, time.perf_counter() - start)
        recall = np.mean([len(set(labels[i]) & set(truth[i, :10])) / 10 for i in range(len(query))])
        print(
            f'{{"index": "faiss-ivfpq-refine", "n": {n}, "dim": {d}, "k": 10, '
            f'"params": {{"nlist": {nlist}, "nprobe": {nprobe}, "k_factor": {k_factor}}}, '
            f'"build_s": {build_s:.1f}, "recall": {recall:.4f}, "qps": {len(query) / best:.1f}}}',
            flush=True,
        )
