"""The Python side of the module's parity bars: the calls `cargo xtask bench-bindings` times in
Rust, made through the `strata` module, printed as rows of the same JSON.

    python python/bench/bench_bindings.py --base B.fvecs --query Q.fvecs --gt GT.ivecs \
        --db DB --scratch /tmp/scratch [--l 40] [--queries 1000] [--reps 7] [--no-upsert]

With --sweep L1,L2,... it instead prints one row per L (batch search q/s and recall), the
module's curve beside the peers' rows of ../shared/peers/peer_bench.py.
"""

import argparse
import json
import shutil
import statistics
import threading
import time

import numpy as np

import strata


def read_vecs(path, dtype=np.float32):
    """An .fvecs / .ivecs file as a 2-d array (each row stored as int32 dim, then the row)."""
    raw = np.fromfile(path, dtype=np.int32)
    dim = int(raw[0])
    rows = raw.reshape(-1, dim + 1)[:, 1:]
    return np.ascontiguousarray(rows.view(dtype) if dtype == np.float32 else rows)


def recall(ids, truth, k):
    hits = sum(len(set(row[row >= 0].tolist()) & set(t[:k].tolist())) for row, t in zip(ids, truth))
    return hits / (len(ids) * k)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--query", required=True)
    parser.add_argument("--gt")
    parser.add_argument("--db", required=True)
    parser.add_argument("--scratch", required=True)
    parser.add_argument("--metric", default="l2")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--l", type=int)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--no-upsert", action="store_true")
    parser.add_argument("--sweep", help="comma-separated L values: one batch-search row per L")
    parser.add_argument("--threads", type=int, help="the search handle's threads [default: cores]")
    parser.add_argument("--python-threads", type=int, default=0,
                        help="also time single-query searches from 1..N Python threads")
    args = parser.parse_args()

    if not args.no_upsert and not args.sweep:
        base = read_vecs(args.base)
        ids = np.arange(len(base), dtype=np.uint64)
        shutil.rmtree(args.scratch, ignore_errors=True)
        db = strata.create(args.scratch, dim=base.shape[1], metric=args.metric)
        start = time.perf_counter()
        db.upsert(ids, base)
        seconds = time.perf_counter() - start
        db.close()
        shutil.rmtree(args.scratch)
        print(json.dumps({"side": "python", "phase": "upsert", "rows": len(base),
                          "dim": base.shape[1], "seconds": seconds,
                          "rows_per_s": len(base) / seconds}), flush=True)

    db = strata.open_read_only(args.db, threads=args.threads)
    queries = read_vecs(args.query)[: args.queries]
    truth = read_vecs(args.gt, np.int32) if args.gt else None
    n = len(queries)

    if args.sweep:
        for l in [int(x) for x in args.sweep.split(",")]:
            found, _ = db.search(queries, k=args.k, l=l)  # warm
            times = []
            for _ in range(args.reps):
                start = time.perf_counter()
                db.search(queries, k=args.k, l=l)
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            print(json.dumps({"index": "strata-python", "params": {"L": l, "threads": args.threads},
                              "side": "python",
                              "phase": "search_batch", "queries": n, "qps": n / seconds,
                              "recall": recall(found, truth, args.k) if truth is not None else None}),
                  flush=True)
        return

    found, _ = db.search(queries, k=args.k, l=args.l)  # warm, as the Rust side does
    batch, looped = [], []
    for _ in range(args.reps):
        start = time.perf_counter()
        db.search(queries, k=args.k, l=args.l)
        batch.append(time.perf_counter() - start)
        start = time.perf_counter()
        for query in queries:
            db.search(query, k=args.k, l=args.l)
        looped.append(time.perf_counter() - start)
    r = recall(found, truth, args.k) if truth is not None else None
    for threads in range(1, args.python_threads + 1):
        # Python threads each loop over their share of the queries, one search call per query:
        # this scales only because every call releases the GIL.
        shares = np.array_split(queries, threads)

        def work(share):
            for query in share:
                db.search(query, k=args.k, l=args.l)

        times = []
        for _ in range(args.reps):
            workers = [threading.Thread(target=work, args=(share,)) for share in shares]
            start = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        print(json.dumps({"side": "python", "phase": f"search_threads_{threads}", "queries": n,
                          "k": args.k, "l": args.l, "seconds": seconds, "qps": n / seconds,
                          "recall": r}), flush=True)
    for phase, times in (("search_batch", batch), ("search_loop", looped)):
        seconds = statistics.median(times)
        print(json.dumps({"side": "python", "phase": phase, "queries": n, "k": args.k,
                          "l": args.l, "seconds": seconds, "qps": n / seconds, "recall": r}),
              flush=True)


if __name__ == "__main__":
    main()
