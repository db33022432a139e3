"""Samples: which rows a phase reads, chosen as a function of the ids so both engines pick the same.

Hash samples (:func:`hash_sample` by :func:`sample_keys`) give the take-off's descriptor sample, the
trust estimate's regions and the model's polish pairs; neighbourhood samples
(:func:`neighbourhood_sample`, the rows nearest each seed) are the fit's bounded sample
(:mod:`veclink_spark.stages.sample` on Spark).
"""

from __future__ import annotations

import math

import numpy as np

from .centre import SIM_DECIMALS, rounded


def id_hashes(ids: np.ndarray) -> np.ndarray:
    """A uint64 per id: integer ids as themselves, other ids (strings) by CRC32 of their UTF-8 text."""
    import zlib

    a = np.asarray(ids)
    if a.dtype.kind in "iu":
        return a.astype(np.uint64)
    return np.array([zlib.crc32(str(v).encode()) for v in a.tolist()], dtype=np.uint64)


def splitmix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array (returned): a well-mixed hash of each value."""
    # Updated in place (the callers pass a fresh array): no temporaries per step on N x N blocks.
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def sample_keys(ids: np.ndarray, salt: int = 0) -> np.ndarray:
    """A non-negative int64 per id, well mixed: a table's sample is its rows with the smallest keys.

    A function of the id alone (not of the row order or the partitioning), so both engines draw the
    same sample; mixed so that sequential or time-ordered ids still give a uniform sample. ``salt``
    draws another sample: two tables whose partners share ids (a migration keeps its object ids) are
    sampled independently when each side has its own salt.
    """
    with np.errstate(over="ignore"):
        h = splitmix(id_hashes(ids) + np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt))
    return (h >> np.uint64(1)).astype(np.int64)


def hash_sample(ids: np.ndarray, size: int, salt: int = 0) -> np.ndarray:
    """Row indices of the ``size`` ids with the smallest :func:`sample_keys` (ties by id), in that order."""
    return np.lexsort((np.asarray(ids), sample_keys(ids, salt)))[: int(size)]


def nearest_seed(x: np.ndarray, seed_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each unit row's nearest seed (index, first on ties) and its similarity (rounded to
    :data:`SIM_DECIMALS`, so both engines rank rows alike)."""
    sims = rounded(
        np.asarray(x, dtype=np.float64) @ np.asarray(seed_vectors, dtype=np.float64).T, SIM_DECIMALS
    )
    idx = sims.argmax(axis=1)
    return idx.astype(np.int32), sims[np.arange(len(sims)), idx]


def rows_per_seed(size: int, n_seeds: int) -> int:
    """How many of its nearest rows each seed contributes to a fit sample of at most ``size`` rows."""
    return math.ceil(size / n_seeds)


def neighbourhood_sample(ids: np.ndarray, x: np.ndarray, seed_vectors: np.ndarray, size: int) -> np.ndarray:
    """Row indices (sorted by id) of the table's fit sample: every row when the table has at most
    ``size`` rows, else for each seed the ceil(size / seeds) rows nearest it among the rows whose
    nearest seed it is (by similarity, then id).

    Why near the seeds and not uniform: two independent uniform samples at rate s share only about
    s x alpha of the overlap, while the neighbourhoods of a seed in the two spaces hold largely the same
    objects (local isometry), so the sample keeps the overlap the method learns from. The Spark job takes
    the same rows with a window (:func:`veclink_spark.stages.sample.neighbourhood_ids`).
    """
    ids = np.asarray(ids)
    if len(ids) <= size:
        return np.argsort(ids, kind="stable")
    per = rows_per_seed(size, len(seed_vectors))
    near, sim = nearest_seed(x, seed_vectors)
    order = np.lexsort((ids, -sim, near))
    grouped = near[order]
    starts = np.searchsorted(grouped, grouped, side="left")
    picked = order[np.arange(len(order)) - starts < per]
    return picked[np.argsort(ids[picked], kind="stable")]
