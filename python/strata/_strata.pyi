"""Type stubs of the Strata extension module (re-exported as ``strata``)."""

import datetime
import os
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Optional, Union, final, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "__version__",
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
    "create",
    "open",
    "open_as_of",
    "open_at",
    "open_read_only",
]

__version__: str

_PathLike = Union[str, "os.PathLike[str]"]
#: _Ids: one integer, or a 1-d sequence/array of non-negative integers.
_Ids = Union[int, np.integer, Sequence[int], npt.NDArray[np.integer]]
#: One vector (1-d) or a batch (2-d, row per vector) of float32.
_Vectors = Union[npt.NDArray[np.float32], Sequence[float], Sequence[Sequence[float]]]
#: Attribute values by name; ``"_payload"`` holds bytes.
_AttributeValue = Union[int, float, bool, str, Sequence[str], bytes, None]
_Attributes = Mapping[str, _AttributeValue]
_Metric = Literal["cosine", "l2", "ip"]
_SearchResult = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]

class StrataError(Exception):
    """Base class of every error Strata raises."""

class InvalidInputError(StrataError, ValueError):
    """Input the engine refuses (wrong dimension, NaN, bad attribute, bad filter, bad option)."""

class NotFoundError(StrataError, LookupError):
    """No database at the location, or no such version."""

class AlreadyExistsError(StrataError):
    """create() found a database already there."""

class LockedError(StrataError):
    """Another handle holds the directory's writer lock."""

class ReadOnlyError(StrataError):
    """A write on a read-only handle."""

class ConflictError(StrataError):
    """Another writer committed first; reopen the handle."""

class PoisonedError(StrataError):
    """An earlier failure left the handle unable to write; reopen it."""

class CorruptionError(StrataError):
    """Stored bytes fail their checksum or do not decode."""

class UnsupportedFormatError(StrataError):
    """The database was written by a newer Strata."""

class StorageError(StrataError, OSError):
    """The storage failed (I/O, full disk, object store)."""

class CancelledError(StrataError):
    """A long operation was cancelled."""

class ClosedError(StrataError):
    """The handle was closed."""

def create(
    path: _PathLike,
    dim: int,
    metric: _Metric = "cosine",
    *,
    threads: Optional[int] = None,
    exist_ok: bool = False,
    storage_options: Optional[Mapping[str, Any]] = None,
    attributes: Optional[Union[Mapping[str, str], str]] = None,
    hnsw_m: Optional[int] = None,
    ef_construction: Optional[int] = None,
    keep_versions: Optional[int] = None,
    keep_for: Optional[float] = None,
    compaction_threshold: Optional[int] = None,
    diskann_min_rows: Optional[int] = None,
    deleted_rewrite_fraction: Optional[float] = None,
    vamana_codec: Optional[str] = None,
    vamana_max_degree: Optional[int] = None,
    compaction_memory_budget: Optional[int] = None,
    auto_flush_bytes: Optional[int] = None,
    background_compaction: Optional[bool] = None,
) -> Db:
    """Creates a database at ``path`` (a directory or ``s3://``/``gs://`` URL) and opens it for writing."""

def open(
    path: _PathLike,
    *,
    threads: Optional[int] = None,
    background_compaction: Optional[bool] = None,
    storage_options: Optional[Mapping[str, Any]] = None,
) -> Db:
    """Opens the database at ``path`` for writing."""

def open_read_only(
    path: _PathLike,
    *,
    threads: Optional[int] = None,
    refresh_every: Optional[float] = None,
    storage_options: Optional[Mapping[str, Any]] = None,
) -> Db:
    """Opens the database at ``path`` read-only (refreshing every ``refresh_every`` seconds if given)."""

def open_at(
    path: _PathLike,
    version: int,
    *,
    threads: Optional[int] = None,
    storage_options: Optional[Mapping[str, Any]] = None,
) -> Snapshot:
    """Version ``version`` of the database at ``path`` as a ``Snapshot``."""

def open_as_of(
    path: _PathLike,
    time: Union[datetime.datetime, float],
    *,
    threads: Optional[int] = None,
    storage_options: Optional[Mapping[str, Any]] = None,
) -> Snapshot:
    """The newest version committed at or before ``time`` as a ``Snapshot``."""

@final
class Db:
    """A database handle: the writer, or a read-only follower. Thread-safe; releases the GIL."""

    @property
    def dim(self) -> int: ...
    @property
    def metric(self) -> _Metric: ...
    @property
    def version(self) -> int: ...
    @property
    def location(self) -> str: ...
    @property
    def schema(self) -> dict[str, str]: ...
    @property
    def closed(self) -> bool: ...
    @property
    def compaction_error(self) -> Optional[str]: ...
    def upsert(
        self,
        ids: _Ids,
        vectors: _Vectors,
        attributes: Optional[Union[_Attributes, Sequence[Optional[_Attributes]]]] = None,
    ) -> None:
        """Inserts or replaces one record or a batch; searchable at once, durable at commit()."""
    def ingest(
        self,
        ids: _Ids,
        vectors: _Vectors,
        attributes: Optional[Union[_Attributes, Sequence[Optional[_Attributes]]]] = None,
    ) -> int:
        """Writes a batch straight into a new segment and commits; returns the version."""
    @overload
    def delete(self, ids: int) -> bool: ...
    @overload
    def delete(self, ids: Union[Sequence[int], npt.NDArray[np.integer]]) -> int: ...
    def update_attributes(self, id: int, attributes: _Attributes) -> bool:
        """Replaces a record's attributes; returns whether it exists."""
    def get(self, id: int) -> Optional[npt.NDArray[np.float32]]:
        """The record's vector, or None."""
    def get_many(self, ids: _Ids) -> list[Optional[npt.NDArray[np.float32]]]:
        """The vectors of many ids (None where missing)."""
    def get_attributes(self, id: int) -> Optional[dict[str, Any]]:
        """The record's attributes (payload under "_payload"), or None."""
    def contains(self, id: int) -> bool: ...
    def __contains__(self, id: int, /) -> bool: ...
    def search(
        self,
        queries: _Vectors,
        k: int = 10,
        *,
        ef: Optional[int] = None,
        l: Optional[int] = None,
        recall: Optional[float] = None,
        filter: Optional[str] = None,
        exact: bool = False,
        radius: Optional[float] = None,
    ) -> _SearchResult:
        """``(ids, distances)``: shape (k,) for one query, (n, k) for a batch; padded with -1 / inf."""
    def commit(self) -> int:
        """Makes every write so far durable; returns the version."""
    def refresh(self) -> int:
        """A read-only handle loads the newest committed version; returns it."""
    def compact(self) -> int:
        """Runs compactions until none is planned; returns how many ran."""
    def gc(self) -> dict[str, int]:
        """Deletes versions outside retention and their files: {"manifests": n, "files": n}."""
    def versions(self) -> list[dict[str, Any]]:
        """Stored versions, oldest first: version, committed_at, records, segments."""
    def segments(self) -> list[dict[str, Any]]:
        """Committed segments: id, kind, rows, live_rows, file_bytes, ram_bytes, codes."""
    def stats(self) -> dict[str, Any]:
        """Records, memtables, segments, RAM, disk, versions, compaction and counters."""
    def counters(self) -> dict[str, int]:
        """Running totals since the handle opened."""
    def snapshot(self) -> Snapshot:
        """The current committed version, pinned."""
    def snapshot_at(self, version: int) -> Snapshot:
        """An older retained version, pinned."""
    def scan(self, batch_size: int = 4096, attributes: bool = False) -> Scan:
        """Every live record of the current committed version, in batches."""
    def close(self) -> None:
        """Closes the handle (stops compaction, releases the lock)."""
    def __enter__(self) -> Db: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    def __len__(self) -> int: ...

@final
class Snapshot:
    """One committed version, pinned: searches, reads and scans see exactly it."""

    @property
    def version(self) -> int: ...
    @property
    def committed_at(self) -> float: ...
    @property
    def dim(self) -> int: ...
    @property
    def metric(self) -> _Metric: ...
    def search(
        self,
        queries: _Vectors,
        k: int = 10,
        *,
        ef: Optional[int] = None,
        l: Optional[int] = None,
        recall: Optional[float] = None,
        filter: Optional[str] = None,
        exact: bool = False,
        radius: Optional[float] = None,
    ) -> _SearchResult: ...
    def get(self, id: int) -> Optional[npt.NDArray[np.float32]]: ...
    def get_many(self, ids: _Ids) -> list[Optional[npt.NDArray[np.float32]]]: ...
    def get_attributes(self, id: int) -> Optional[dict[str, Any]]: ...
    def contains(self, id: int) -> bool: ...
    def __contains__(self, id: int, /) -> bool: ...
    def scan(self, batch_size: int = 4096, attributes: bool = False) -> Scan: ...
    def close(self) -> None: ...
    def __enter__(self) -> Snapshot: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    def __len__(self) -> int: ...

@final
class Scan(Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], Optional[list[dict[str, Any]]]]]):
    """Batches of ``(ids, vectors, attributes)``; attributes is None unless asked for."""

    def __iter__(self) -> Scan: ...
    def __next__(
        self,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], Optional[list[dict[str, Any]]]]: ...
