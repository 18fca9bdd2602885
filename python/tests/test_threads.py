"""Threads share one handle: searches run beside a writer and each other (the GIL is
released inside every engine call)."""

import sys
import threading

import numpy as np

import strata


def test_threads_search_while_one_writes(path, rng):
    dim = 16
    base = rng.standard_normal((2000, dim), dtype=np.float32)
    queries = rng.standard_normal((64, dim), dtype=np.float32)
    with strata.create(path, dim=dim, metric="l2") as db:
        db.upsert(np.arange(1000), base[:1000])
        db.commit()
        errors = []
        stop = threading.Event()

        def writer():
            try:
                for start in range(1000, 2000, 50):
                    db.upsert(np.arange(start, start + 50), base[start:start + 50])
                    if start % 200 == 0:
                        db.commit()
                db.commit()
            except Exception as e:  # surfaced by the assertion below
                errors.append(e)
            finally:
                stop.set()

        def searcher():
            try:
                while not stop.is_set():
                    ids, dist = db.search(queries, k=5)
                    # Every result is a record some write made, nearest first.
                    assert ((ids >= 0) & (ids < 2000)).all()
                    assert (np.diff(dist, axis=1) >= 0).all()
                    exact, _ = db.search(base[:4], k=1, exact=True)
                    assert exact[:, 0].tolist() == [0, 1, 2, 3]
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=writer)] + [
            threading.Thread(target=searcher) for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        assert len(db) == 2000
        got, _ = db.search(base, k=1, exact=True)
        assert (got[:, 0] == np.arange(2000)).all()


def test_a_search_in_one_thread_lets_python_run_in_another(path, rng):
    # The main thread counts while another thread sits in one long engine call. With a long
    # switch interval, a call that held the GIL would see the count stand still from just
    # before it to just after; a call that releases it sees the main thread count on.
    dim = 64
    with strata.create(path, dim=dim, metric="l2", threads=1) as db:
        db.ingest(np.arange(20000), rng.standard_normal((20000, dim), dtype=np.float32))
        queries = rng.standard_normal((300, dim), dtype=np.float32)
        state = {"ticks": 0, "during": None}
        done = threading.Event()

        def search():
            before = state["ticks"]
            db.search(queries, k=10, exact=True)
            state["during"] = state["ticks"] - before
            done.set()

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1.0)
        try:
            t = threading.Thread(target=search)
            t.start()
            while not done.is_set():
                state["ticks"] += 1
            t.join()
        finally:
            sys.setswitchinterval(interval)
        assert state["during"] > 10_000, state
