"""Strata: an embeddable, LSM-style tiered vector storage engine.

Writes land in an in-memory graph and are searchable at once; ``commit()`` makes them durable
as an immutable segment and publishes a new version atomically; a background compactor merges
segments into disk-resident Vamana (DiskANN) graphs with compressed codes in RAM.

>>> import numpy as np, strata
>>> db = strata.create("/tmp/vectors", dim=4, metric="l2")  # doctest: +SKIP
>>> db.upsert(np.arange(3), np.eye(3, 4, dtype=np.float32))  # doctest: +SKIP
>>> db.commit()  # doctest: +SKIP
>>> ids, distances = db.search(np.ones(4, dtype=np.float32), k=2)  # doctest: +SKIP

See ``help(strata.Db)`` and docs/PYTHON.md.
"""

from ._strata import (
    AlreadyExistsError,
    CancelledError,
    ClosedError,
    ConflictError,
    CorruptionError,
    Db,
    InvalidInputError,
    LockedError,
    NotFoundError,
    PoisonedError,
    ReadOnlyError,
    Scan,
    Snapshot,
    StorageError,
    StrataError,
    UnsupportedFormatError,
    __version__,
    create,
    open,
    open_as_of,
    open_at,
    open_read_only,
)

# `open` is left out of __all__ so that `from strata import *` does not shadow the builtin;
# call it as `strata.open`.
__all__ = [
    "AlreadyExistsError",
    "CancelledError",
    "ClosedError",
    "ConflictError",
    "CorruptionError",
    "Db",
    "InvalidInputError",
    "LockedError",
    "NotFoundError",
    "PoisonedError",
    "ReadOnlyError",
    "Scan",
    "Snapshot",
    "StorageError",
    "StrataError",
    "UnsupportedFormatError",
    "__version__",
    "create",
    "open_as_of",
    "open_at",
    "open_read_only",
]
