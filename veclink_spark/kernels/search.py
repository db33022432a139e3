"""Exact nearest rows of a few query vectors, and the probes a pair's blocked search needs.

Both engines call :func:`best_rows` (the in-process backend on a whole table, the Spark stage
:mod:`veclink_spark.stages.nearest` on each Arrow batch, then the best of the batches' bests), so both
find the same rows. :func:`probes_needed` reads how many of its nearest cells a pair's two rows must
each be searched in to meet (:mod:`veclink_spark.search_recall`).

Written here rather than with faiss: an exact search of a couple of thousand queries against one
batch is one matrix product, and the ties must go to the smaller id in every engine alike (a faiss
flat index breaks them by position within the batch).
"""

from __future__ import annotations

import numpy as np

from .centre import SIM_DECIMALS, rounded

#: Rows of a table scored against the queries in one matrix product (2,000 queries: 64 MB).
CHUNK_ROWS = 4096


def best_rows(ids: np.ndarray, x: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the position in ``x`` of its most similar row (inner product, rounded to
    :data:`~veclink_spark.kernels.centre.SIM_DECIMALS`; ties: the smaller id) and that similarity.
    ``ids``: the rows' ids, ``x``: their unit vectors; an empty ``x`` gives positions -1, -inf."""
    q = np.asarray(queries, dtype=np.float64)
    ids = np.asarray(ids)
    at = np.full(len(q), -1, dtype=np.int64)
    sim = np.full(len(q), -np.inf)
    for lo in range(0, len(x), CHUNK_ROWS):
        s = rounded(q @ np.asarray(x[lo : lo + CHUNK_ROWS], dtype=np.float64).T, SIM_DECIMALS)
        top = s.max(axis=1)
        pos = s.argmax(axis=1) + lo
        # ties within the chunk (rare at 9 decimals): the smallest id among the maxima
        for i in np.nonzero((s == top[:, None]).sum(axis=1) > 1)[0]:
            tied = np.nonzero(s[i] == top[i])[0] + lo
            pos[i] = tied[np.argmin(ids[tied])]
        better = top > sim
        tie = (top == sim) & (at >= 0)
        better[tie] = ids[pos[tie]] < ids[at[tie]]
        at[better], sim[better] = pos[better], top[better]
    return at, sim


def probes_needed(left_cells: np.ndarray, right_cells: np.ndarray) -> np.ndarray:
    """For each pair, the fewest probes p at which its two rows share a cell: the smallest max(i, j) + 1
    over ``left_cells[:, i] == right_cells[:, j]`` (each row's cells nearest first, as
    :func:`veclink_spark.kernels.signatures.nearest_keys` gives them). A pair that shares none of
    them needs more than are given: ``left_cells.shape[1] + 1``."""
    n, k = left_cells.shape
    need = np.full(n, k + 1, dtype=np.int64)
    for i in range(k):
        for j in range(k):
            hit = left_cells[:, i] == right_cells[:, j]
            need[hit] = np.minimum(need[hit], max(i, j) + 1)
    return need
