"""Ctrl-C during a long call: a compaction stops, publishes nothing, loses nothing, and runs
again later."""

import _thread
import threading

import numpy as np
import pytest

import strata


def test_ctrl_c_cancels_a_compaction_and_loses_nothing(path, rng):
    dim, part, parts = 48, 20_000, 4
    vectors = rng.standard_normal((part * parts, dim), dtype=np.float32)
    with strata.create(path, dim=dim, metric="l2", diskann_min_rows=1000,
                       background_compaction=False) as db:
        for p in range(parts):
            rows = slice(p * part, (p + 1) * part)
            db.ingest(np.arange(rows.start, rows.stop), vectors[rows])
        before = db.segments()
        assert [s["kind"] for s in before] == ["flat"] * parts
        # SIGINT as Ctrl-C sends it, while the merge into a Vamana segment is building.
        timer = threading.Timer(0.3, _thread.interrupt_main)
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                db.compact()
        finally:
            timer.join()
        assert [s["id"] for s in db.segments()] == [s["id"] for s in before]
        assert len(db) == part * parts
        assert db.compact() >= 1
        assert [s["kind"] for s in db.segments()] == ["vamana"]
        got, _ = db.search(vectors[::997], k=1, exact=True)
        assert got[:, 0].tolist() == list(range(0, part * parts, 997))
        db.gc()
