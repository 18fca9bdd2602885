"""Shared fixtures: a fresh database directory per test and seeded random data."""

import numpy as np
import pytest


@pytest.fixture
def path(tmp_path):
    """A database location inside the test's temporary directory (not yet created)."""
    return tmp_path / "db"


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def brute_force(base_ids, base, queries, k, metric):
    """The exact k nearest (ids, distances) by numpy, in the engine's distance conventions."""
    if metric == "cosine":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        d = 1.0 - queries @ base.T
    elif metric == "ip":
        d = -(queries @ base.T)
    else:
        d = (
            (queries * queries).sum(1)[:, None]
            - 2.0 * queries @ base.T
            + (base * base).sum(1)[None, :]
        )
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return base_ids[order], np.take_along_axis(d, order, axis=1)
