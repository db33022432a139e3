"""Centring and normalising: the centre phase, and the unit-vector arithmetic every later phase shares.

Each table's rows are made unit length, centred on the table's mean and made unit again (VecMap's
normalisation): :func:`centred_table` in memory, :func:`table_mean` and :func:`centre_rows` on Spark
(:mod:`veclink_spark.stages.centre`), :func:`centred_with` for a fitted model's new rows. The other
kernel modules build on :func:`normalise_rows`, :func:`pairwise_distances` and :func:`rounded`
(similarities rounded to :data:`SIM_DECIMALS`).
"""

from __future__ import annotations

import numpy as np

#: Decimals kept of every similarity before comparisons (see :mod:`veclink_spark.kernels`).
SIM_DECIMALS = 9


def rounded(x: np.ndarray, decimals: int) -> np.ndarray:
    """``np.round(x, decimals)`` computed in place on a fresh float64 array (bit-identical: numpy rounds
    by the same multiply, rint, divide; without the two temporaries of a 60M-entry block matrix)."""
    scale = 10.0**decimals
    np.multiply(x, scale, out=x)
    np.rint(x, out=x)
    np.divide(x, scale, out=x)
    return x


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise each row (float64). Zero rows stay zero (inputs are validated to have none)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


#: Decimals kept of a table's mean vector: the engines sum in different orders, and the rounded means
#: are then equal, so both centre every vector alike.
MEAN_DECIMALS = 12


def table_mean(unit_sum: np.ndarray, n_rows: int) -> np.ndarray:
    """Mean of a table's unit vectors from their sum (rounded to :data:`MEAN_DECIMALS`)."""
    return np.round(np.asarray(unit_sum, dtype=np.float64) / max(int(n_rows), 1), MEAN_DECIMALS)


def centre_rows(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Unit rows minus the table's mean (not re-normalised: every consumer normalises its rows).

    With :func:`normalise_rows` after it this is VecMap's normalisation (unit, centre, unit).
    """
    return normalise_rows(x) - np.asarray(mean, dtype=np.float64)[None, :]


def centred_table(x: np.ndarray) -> np.ndarray:
    """A whole table, in memory, centred as the Spark job does it: unit rows, minus the rounded mean of
    the unit rows (:func:`table_mean`), unit rows again."""
    units = normalise_rows(x)
    return centred_with(units, table_mean(units.sum(axis=0), len(units)))


def centred_with(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Rows centred on a given table mean (a fitted model centres new rows on its tables' means)."""
    # float32 between the two steps, as the Spark job keeps the centred tables (stages.centre.centred)
    return normalise_rows(centre_rows(x, mean).astype(np.float32))


def pairwise_distances(x: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Euclidean distances between unit rows of ``x`` (n, d) and ``anchors`` (k, d): sqrt(2 - 2 cos)."""
    g = np.asarray(x, dtype=np.float64) @ np.asarray(anchors, dtype=np.float64).T
    return np.sqrt(np.maximum(2.0 - 2.0 * g, 0.0))
