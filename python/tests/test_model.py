"""Model-style checks at small scale: random upserts, deletes, commits and reopens against a
dict of what must be there, and exact search against numpy brute force for every metric."""

import time

import numpy as np
import pytest

import strata
from conftest import brute_force

METRICS = ["l2", "ip", "cosine"]


@pytest.mark.parametrize("metric", METRICS)
def test_exact_search_equals_brute_force(path, rng, metric):
    dim, n = 16, 600
    ids = rng.choice(10_000, size=n, replace=False).astype(np.int64)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    with strata.create(path, dim=dim, metric=metric) as db:
        db.upsert(ids[:400], vectors[:400])
        db.commit()
        db.upsert(ids[400:], vectors[400:])  # a second tier: the memtable
        queries = rng.standard_normal((25, dim), dtype=np.float32)
        got_ids, got_d = db.search(queries, k=10, exact=True)
        want_ids, want_d = brute_force(ids, vectors, queries, 10, metric)
        assert got_ids.shape == (25, 10) and got_ids.dtype == np.int64
        assert got_d.shape == (25, 10) and got_d.dtype == np.float32
        np.testing.assert_allclose(got_d, want_d, rtol=1e-4, atol=1e-4)
        # Ids agree wherever distances are not tied.
        assert (got_ids == want_ids).mean() > 0.99


@pytest.mark.parametrize("metric", METRICS)
def test_approximate_search_finds_most_neighbours(path, rng, metric):
    dim, n = 24, 3000
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    ids = np.arange(n, dtype=np.uint64)
    with strata.create(path, dim=dim, metric=metric, diskann_min_rows=1000) as db:
        db.ingest(ids[:1500], vectors[:1500])
        db.ingest(ids[1500:], vectors[1500:])
        db.compact()
        assert [s["kind"] for s in db.segments()] == ["vamana"]
        queries = rng.standard_normal((50, dim), dtype=np.float32)
        got, _ = db.search(queries, k=10, l=64)
        want, _ = brute_force(ids.astype(np.int64), vectors, queries, 10, metric)
        recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)])
        assert recall >= 0.9, recall


def test_random_operations_match_a_model(path, rng):
    dim = 8
    model = {}  # id -> vector, what committed state plus acknowledged writes hold
    committed = {}
    db = strata.create(path, dim=dim, metric="l2")
    try:
        for step in range(300):
            op = rng.integers(0, 10)
            if op < 5:
                batch = rng.choice(200, size=int(rng.integers(1, 20)), replace=False)
                vectors = rng.standard_normal((len(batch), dim), dtype=np.float32)
                db.upsert(batch, vectors)
                model.update({int(i): v for i, v in zip(batch, vectors)})
            elif op < 7:
                victims = rng.choice(200, size=int(rng.integers(1, 10)), replace=False)
                expected = sum(int(v) in model for v in victims)
                assert db.delete(victims) == expected
                for v in victims:
                    model.pop(int(v), None)
            elif op < 8:
                db.commit()
                committed = dict(model)
            elif op < 9:
                # Reopen: uncommitted writes are gone, committed ones are all there.
                db.close()
                db = strata.open(path)
                model = dict(committed)
            else:
                db.compact()
            assert len(db) == len(model)
            probe = int(rng.integers(0, 200))
            got = db.get(probe)
            if probe in model:
                np.testing.assert_array_equal(got, model[probe])
            else:
                assert got is None
        # Every record is found by an exact search for its own vector.
        ids = np.array(sorted(model), dtype=np.int64)
        vectors = np.stack([model[i] for i in ids])
        got, dist = db.search(vectors, k=1, exact=True)
        assert (got[:, 0] == ids).all()
        assert (dist[:, 0] <= 1e-4).all()
    finally:
        db.close()


def test_one_vector_in_one_vector_out(path):
    with strata.create(path, dim=3, metric="l2") as db:
        db.upsert(5, np.array([1, 0, 0], dtype=np.float32))
        db.upsert(6, [0.0, 1.0, 0.0])  # a list of floats converts
        ids, distances = db.search(np.array([1, 0, 0], dtype=np.float32), k=4)
        assert ids.shape == (4,) and distances.shape == (4,)
        assert ids.tolist() == [5, 6, -1, -1]
        assert distances[0] == 0.0 and distances[1] == pytest.approx(2.0)
        assert np.isinf(distances[2:]).all()
        assert 5 in db and 7 not in db
        assert db.delete(5) is True and db.delete(5) is False


def test_commit_reopen_and_versions(path, rng):
    vectors = rng.standard_normal((100, 4), dtype=np.float32)
    with strata.create(path, dim=4, metric="l2", keep_versions=10) as db:
        db.upsert(np.arange(50), vectors[:50])
        v1 = db.commit()
        db.upsert(np.arange(50, 100), vectors[50:])
        db.delete([0, 1, 2])
        v2 = db.commit()
        assert v2 > v1 and db.version == v2
        assert db.commit() == v2  # nothing new
        versions = db.versions()
        assert [v["version"] for v in versions][-2:] == [v1, v2]
        assert versions[-1]["records"] == 97 and versions[-2]["records"] == 50
        assert versions[-1]["committed_at"] >= versions[-2]["committed_at"] > 1.6e9
    with strata.open(path) as db:
        assert len(db) == 97
        np.testing.assert_array_equal(db.get(99), vectors[99])
        assert db.get(1) is None
    with strata.open_at(path, v1) as old:
        assert len(old) == 50 and old.version == v1
        np.testing.assert_array_equal(old.get(1), vectors[1])
        assert 60 not in old
    with strata.open_as_of(path, versions[-2]["committed_at"]) as old:
        assert old.version == v1


def test_ids_past_int64_read_back_through_a_uint64_view(path):
    big = np.array([2**64 - 2, 2**63], dtype=np.uint64)
    with strata.create(path, dim=2, metric="l2") as db:
        db.upsert(big, np.array([[0, 0], [1, 1]], dtype=np.float32))
        ids, _ = db.search(np.zeros(2, dtype=np.float32), k=3)
        assert ids.view(np.uint64)[:2].tolist() == [2**64 - 2, 2**63]
        assert ids[2] == -1
        assert db.get(2**64 - 2) is not None


def test_followers_refresh_and_gc(path, rng):
    vectors = rng.standard_normal((30, 4), dtype=np.float32)
    with strata.create(path, dim=4, metric="l2", keep_versions=1) as db:
        db.upsert(np.arange(10), vectors[:10])
        db.commit()
        reader = strata.open_read_only(path)
        follower = strata.open_read_only(path, refresh_every=0.05)
        assert len(reader) == 10
        db.upsert(np.arange(10, 30), vectors[10:])
        version = db.commit()
        assert len(reader) == 10  # until it refreshes
        assert reader.refresh() == version and len(reader) == 30
        deadline = time.monotonic() + 10
        while len(follower) != 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(follower) == 30
        reader.close()
        follower.close()
        db.compact()
        removed = db.gc()
        assert set(removed) == {"manifests", "files"} and removed["manifests"] >= 1
        assert [v["version"] for v in db.versions()] == [db.version]
        with pytest.raises(strata.NotFoundError):
            db.snapshot_at(version - 1)
        with pytest.raises(strata.InvalidInputError, match="threads"):
            strata.open_read_only(path, threads=0)
