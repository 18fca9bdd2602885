#!/usr/bin/env python3
"""faiss's scalar-quantizer indexes on .fvecs/.ivecs files, printing JSON rows shaped like
`cargo xtask bench --json`, to set beside Strata's flat-sq8 / flat-int4 (for comparison only).

  pip install numpy faiss-cpu
  python3 scripts/faiss_codes.py --base B --query Q --gt G --metric l2 --index sq8 --refine 1,2,4
  python3 scripts/faiss_codes.py ... --index ivf-sq8 --nprobe 8,16,32,64 --refine 2

Kinds: sq8 / sq4 (exhaustive IndexScalarQuantizer, 8 or 4 bits, per-dimension min/max
training), ivf-sq8 (IVF sqrt(n)*4 lists + SQ8), rabitq (exhaustive IndexRaBitQ with --bits bits
per dimension, queries quantized to 8 bits: faiss's RaBitQ, beside Strata's flat-rabitq).
--refine R reranks the best k*R with the exact vectors (IndexRefineFlat; 1 = no rerank).
Searches run on one thread, one batch per setting.
"""
import argparse, json, time

import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:, 1:].view(dtype).copy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--query", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--metric", default="l2", choices=["l2", "ip", "cosine"])
    ap.add_argument("--index", default="sq8", choices=["sq8", "sq4", "ivf-sq8", "rabitq"])
    ap.add_argument("--bits", type=int, default=1, help="rabitq: bits per dimension")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--refine", default="1")
    ap.add_argument("--nprobe", default="16")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import faiss

    base = read_vecs(a.base, np.float32)
    queries = read_vecs(a.query, np.float32)
    gt = read_vecs(a.gt, np.int32)[:, : a.k]
    if a.metric == "cosine":
        faiss.normalize_L2(base)
        faiss.normalize_L2(queries)
    metric = faiss.METRIC_L2 if a.metric == "l2" else faiss.METRIC_INNER_PRODUCT
    n, d = base.shape
    nlist = int(4 * np.sqrt(n))
    faiss.omp_set_num_threads(a.threads)
    started = time.perf_counter()
    if a.index == "rabitq":
        # Wrapped before training and adding, as faiss's RaBitQ needs.
        if a.bits == 1:
            inner = faiss.IndexRaBitQ(d, metric)
        else:
            inner = faiss.IndexRaBitQ(d, metric, a.bits)
        index = faiss.IndexRefineFlat(inner)
        index.train(base)
    else:
        spec = {"sq8": "SQ8", "sq4": "SQ4", "ivf-sq8": f"IVF{nlist},SQ8"}[a.index]
        inner = faiss.index_factory(d, spec, metric)
        inner.train(base)
        index = faiss.IndexRefineFlat(inner)
    index.add(base)
    build_s = time.perf_counter() - started
    faiss.omp_set_num_threads(1)

    nprobes = [int(x) for x in a.nprobe.split(",")] if a.index == "ivf-sq8" else [None]
    for nprobe in nprobes:
        if nprobe is not None:
            faiss.extract_index_ivf(inner).nprobe = nprobe
        for refine in (int(x) for x in a.refine.split(",")):
            index.k_factor = refine
            started = time.perf_counter()
            if a.index == "rabitq":
                params = faiss.IndexRefineSearchParameters(k_factor=refine)
                params.base_index_params = faiss.RaBitQSearchParameters(qb=8)
                _, labels = index.search(queries, a.k, params=params)
            else:
                _, labels = index.search(queries, a.k)
            secs = time.perf_counter() - started
            hits = sum(len(set(row) & set(truth)) for row, truth in zip(labels, gt))
            params = {"refine": refine}
            if a.index == "rabitq":
                params["bits"] = a.bits
            if nprobe is not None:
                params["nprobe"] = nprobe
            print(json.dumps({
                "index": f"faiss-{a.index}" + (str(a.bits) if a.index == "rabitq" else ""), "n": n, "dim": d, "metric": a.metric, "k": a.k,
                "threads": 1, "build_threads": a.threads, "params": params,
                "build_s": round(build_s, 3), "recall": round(hits / (len(gt) * a.k), 4),
                "qps": round(len(queries) / secs, 1),
            }), flush=True)


if __name__ == "__main__":
    main()
