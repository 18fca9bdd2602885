"""Bad input raises clear exceptions (and writes nothing); every engine failure arrives as
its own exception class with the engine's message."""

import os
import pathlib

import numpy as np
import pytest

import strata


@pytest.fixture
def db(path):
    with strata.create(path, dim=4, metric="l2", attributes={"lang": "keyword", "n": "u64"}) as db:
        yield db


def test_the_class_tree():
    assert issubclass(strata.InvalidInputError, strata.StrataError)
    assert issubclass(strata.InvalidInputError, ValueError)
    assert issubclass(strata.NotFoundError, LookupError)
    assert issubclass(strata.StorageError, OSError)
    for name in ["ConflictError", "CorruptionError", "PoisonedError", "ClosedError"]:
        assert issubclass(getattr(strata, name), strata.StrataError)
        assert getattr(strata, name).__module__ == "strata"


def test_wrong_dtype_is_a_type_error(db):
    with pytest.raises(TypeError, match="float32.*float64"):
        db.upsert([1, 2], np.zeros((2, 4)))
    with pytest.raises(TypeError, match="float32"):
        db.search(np.zeros(4, dtype=np.float16))
    with pytest.raises(TypeError, match="integers"):
        db.upsert(np.array([1.5]), np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(TypeError):
        db.get("seven")
    assert len(db) == 0


def test_wrong_shapes(db):
    with pytest.raises(strata.InvalidInputError, match="dimension 3, the database 4"):
        db.upsert([1], np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="2 ids but 3 vectors"):
        db.upsert([1, 2], np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="1-d.*2-d"):
        db.upsert([1], np.zeros((1, 1, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="queries have dimension 5"):
        db.search(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=">= 0"):
        db.upsert(np.array([-1]), np.zeros((1, 4), dtype=np.float32))
    assert len(db) == 0


def test_nan_fails_the_batch_naming_the_row(db):
    vectors = np.ones((3, 4), dtype=np.float32)
    vectors[2, 1] = np.nan
    with pytest.raises(strata.InvalidInputError, match=r"row 2 \(id 12\)"):
        db.upsert([10, 11, 12], vectors)
    assert len(db) == 0  # nothing of the batch was written
    with pytest.raises(strata.InvalidInputError):
        db.search(np.full(4, np.inf, dtype=np.float32))


def test_non_contiguous_and_fortran_arrays_are_read_in_row_order(db):
    base = np.arange(32, dtype=np.float32).reshape(8, 4)
    db.upsert(np.arange(4), np.asfortranarray(base[:4]))
    db.upsert(np.arange(4, 8), base[4:, :][::1])
    db.upsert(np.arange(100, 104), base[::2])  # strided rows
    for i in range(8):
        np.testing.assert_array_equal(db.get(i), base[i])
    np.testing.assert_array_equal(db.get(101), base[2])


def test_bad_options():
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        strata.create("/tmp/never-created", dim=4, colour="red")
    with pytest.raises(strata.InvalidInputError, match="unknown metric"):
        strata.create("/tmp/never-created", dim=4, metric="manhattan")
    with pytest.raises(strata.InvalidInputError, match="unknown codec"):
        strata.create("/tmp/never-created", dim=4, vamana_codec="zip")
    with pytest.raises(strata.InvalidInputError, match="unknown type"):
        strata.create("/tmp/never-created", dim=4, attributes={"a": "date"})
    with pytest.raises(strata.InvalidInputError):
        strata.create("/tmp/never-created", dim=0)
    assert not os.path.exists("/tmp/never-created")


def test_bad_attributes_and_filters(db):
    v = np.zeros(4, dtype=np.float32)
    with pytest.raises(strata.InvalidInputError, match='"n" expected an unsigned integer'):
        db.upsert(1, v, {"n": "five"})
    with pytest.raises(strata.InvalidInputError, match="unknown attribute"):
        db.upsert(1, v, {"colour": "red"})
    with pytest.raises(ValueError, match="one per row"):
        db.upsert([1, 2], np.zeros((2, 4), dtype=np.float32), [{"n": 1}])
    with pytest.raises(strata.InvalidInputError, match="syntax"):
        db.search(v, filter="lang = = 'x'")
    with pytest.raises(strata.InvalidInputError, match="unknown attribute"):
        db.search(v, filter="colour = 'red'")
    assert len(db) == 0


def test_handle_errors(path):
    db = strata.create(path, dim=2, metric="l2")
    with pytest.raises(strata.LockedError):
        strata.open(path)
    with pytest.raises(strata.LockedError):
        strata.create(path, dim=2)
    db.upsert(1, [1.0, 2.0])
    db.commit()
    reader = strata.open_read_only(path)
    with pytest.raises(strata.ReadOnlyError):
        reader.upsert(2, [0.0, 0.0])
    assert len(reader) == 1
    db.close()
    db.close()  # twice is fine
    assert db.closed
    with pytest.raises(strata.ClosedError):
        db.search([0.0, 0.0])
    with pytest.raises(strata.NotFoundError):
        strata.open(pathlib.Path(path).parent / "missing")
    with pytest.raises(strata.NotFoundError):
        strata.open_at(path, 999)
    with pytest.raises(strata.AlreadyExistsError):
        strata.create(path, dim=2)
    # create(exist_ok=True) opens what is there.
    with strata.create(path, dim=2, exist_ok=True) as again:
        assert len(again) == 1


def test_corrupt_files_raise_corruption_and_lose_nothing_else(path, rng):
    vectors = rng.standard_normal((50, 4), dtype=np.float32)
    with strata.create(path, dim=4, metric="l2") as db:
        db.upsert(np.arange(50), vectors)
        db.commit()
    segments = [p for p in pathlib.Path(path).rglob("*.flat")]
    assert segments, list(pathlib.Path(path).rglob("*"))
    data = bytearray(segments[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    segments[0].write_bytes(bytes(data))
    with pytest.raises(strata.CorruptionError, match="corrupt|checksum"):
        with strata.open(path) as db:
            db.search(vectors[:2], k=5, exact=True)


def test_a_huge_k_is_a_memory_error_not_an_abort(db):
    db.upsert([1, 2], np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(MemoryError, match="smaller k"):
        db.search(np.zeros(4, dtype=np.float32), k=10**12)
    with pytest.raises(MemoryError):
        db.search(np.zeros((4, 4), dtype=np.float32), k=2**62)
    ids, _ = db.search(np.zeros(4, dtype=np.float32), k=3)  # the handle is fine afterwards
    assert sorted(ids.tolist()) == [-1, 1, 2]
