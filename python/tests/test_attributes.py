"""Attributes, payloads and filtered search (against numpy over the matching rows), scans and
snapshots."""

import numpy as np
import pytest

import strata
from conftest import brute_force

LANGS = ["de", "en", "fr"]


@pytest.fixture
def filled(path, rng):
    n, dim = 800, 8
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    ids = np.arange(n, dtype=np.int64)
    attrs = [
        {"lang": LANGS[i % 3], "n": int(i), "score": float(i) / 10, "tags": [f"t{i % 5}"],
         "ok": bool(i % 2), "_payload": f"doc {i}".encode()}
        for i in range(n)
    ]
    schema = {"lang": "keyword", "n": "u64", "score": "f64", "tags": "keywords", "ok": "bool"}
    db = strata.create(path, dim=dim, metric="l2", attributes=schema)
    db.upsert(ids[:500], vectors[:500], attrs[:500])
    db.commit()
    db.upsert(ids[500:], vectors[500:], attrs[500:])
    yield db, ids, vectors, attrs
    db.close()


def test_attributes_read_back(filled):
    db, _, _, attrs = filled
    assert db.schema == {"lang": "keyword", "n": "u64", "score": "f64", "tags": "keywords",
                         "ok": "bool"}
    assert db.get_attributes(7) == attrs[7]
    assert db.get_attributes(650) == attrs[650]
    assert db.get_attributes(10_000) is None
    assert db.update_attributes(7, {"lang": "en"}) is True
    assert db.get_attributes(7) == {"lang": "en"}
    assert db.update_attributes(10_000, {"lang": "en"}) is False


@pytest.mark.parametrize(
    "text, keep",
    [
        ("lang = 'de'", lambda a: a["lang"] == "de"),
        ("n >= 100 AND n < 400", lambda a: 100 <= a["n"] < 400),
        ("lang IN ('en', 'fr') AND ok = true", lambda a: a["lang"] != "de" and a["ok"]),
        ("tags = 't3' OR score > 70.5", lambda a: "t3" in a["tags"] or a["score"] > 70.5),
        ("NOT lang = 'fr'", lambda a: a["lang"] != "fr"),
    ],
)
def test_filtered_search_equals_brute_force_over_the_matching_rows(filled, rng, text, keep):
    db, ids, vectors, attrs = filled
    mask = np.array([keep(a) for a in attrs])
    queries = rng.standard_normal((20, vectors.shape[1]), dtype=np.float32)
    got, got_d = db.search(queries, k=10, filter=text, exact=True)
    want, want_d = brute_force(ids[mask], vectors[mask], queries, 10, "l2")
    np.testing.assert_allclose(got_d, want_d, rtol=1e-4, atol=1e-4)
    assert all(keep(attrs[i]) for i in got.ravel())
    approx, _ = db.search(queries, k=10, filter=text)
    assert all(keep(attrs[i]) for i in approx.ravel() if i >= 0)


def test_range_search(filled, rng):
    db, ids, vectors, _ = filled
    query = vectors[3]
    d = ((vectors - query) ** 2).sum(1)
    radius = float(np.sort(d)[15])
    got, dist = db.search(query, k=100, radius=radius, exact=True)
    inside = got[got >= 0]
    assert sorted(inside.tolist()) == sorted(ids[d <= radius].tolist())
    assert (dist[: len(inside)] <= radius).all()


def test_scan_streams_every_committed_record(filled):
    db, ids, vectors, attrs = filled
    db.delete([0, 1])
    db.commit()
    seen_ids, seen_vectors = [], []
    for batch_ids, batch_vectors, batch_attrs in db.scan(batch_size=128, attributes=True):
        assert len(batch_ids) <= 128 and batch_vectors.shape == (len(batch_ids), 8)
        assert [attrs[i] for i in batch_ids] == batch_attrs
        seen_ids.append(batch_ids)
        seen_vectors.append(batch_vectors)
    seen = np.concatenate(seen_ids)
    assert sorted(seen.tolist()) == list(range(2, 800))
    np.testing.assert_array_equal(np.concatenate(seen_vectors), vectors[seen])
    ids_only = next(iter(db.scan()))
    assert ids_only[2] is None


def test_a_snapshot_keeps_its_version_while_writes_go_on(filled):
    db, _, vectors, _ = filled
    db.commit()
    snapshot = db.snapshot()
    before = len(snapshot)
    db.delete(list(range(100)))
    db.upsert(5000, np.zeros(8, dtype=np.float32))
    db.commit()
    db.compact()
    assert len(snapshot) == before == 800
    assert snapshot.get(5) is not None and 5000 not in snapshot
    got, _ = snapshot.search(vectors[:3], k=1, exact=True)
    assert got[:, 0].tolist() == [0, 1, 2]
    old = db.snapshot_at(snapshot.version)
    assert len(old) == 800
    assert len(db) == 701
    stats = db.stats()
    assert stats["records"] == 701
    assert {"memtables", "segments", "by_kind", "ram", "compaction", "counters"} <= set(stats)
    assert db.counters()["commits"] >= 3
