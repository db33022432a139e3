"""Blocking: which rows meet in a round, and the ``geh`` round's search within a block.

Serves the candidate stage (:mod:`veclink_spark.stages.candidates`) and the in-process backend: a
block (view, key) is capped to the rows nearest its anchor (:func:`cap_block`) and searched for each
row's best match (:func:`block_best_matches`, in bounded memory); a ``refine`` round's blocks are
k-means cells (:func:`cell_centroids`). The ``refine`` round's block search is CSLS:
:func:`veclink_spark.kernels.maps.csls_block`.
"""

from __future__ import annotations

import numpy as np

from .centre import SIM_DECIMALS, normalise_rows, rounded


def _column_argmax(c: np.ndarray) -> np.ndarray:
    """``c.argmax(axis=0)`` (first maximum of each column), ~5x faster on a C-ordered block matrix:
    numpy's column argmax walks memory with a stride, while a column max, an equality test and the
    first hit per column stream through it row by row."""
    m = c.max(axis=0)
    rows, cols = np.nonzero(c == m[None, :])  # row-major order: a column's first hit has its smallest row
    first_cols, first = np.unique(cols, return_index=True)
    out = np.zeros(c.shape[1], dtype=np.int64)
    out[first_cols] = rows[first]
    return out


#: Entries of a block's similarity matrix held at once (2^24 doubles, 128 MiB): a block is searched in
#: slices of left rows, so a block of 50,000 rows a side (backends.base.MAX_BLOCK_SIZE) needs 128 MiB, not the
#: 20 GB of its whole matrix (which crashed the loop's Spark stage at 100,000 rows a side).
BLOCK_ENTRIES = 1 << 24


def block_best_matches(
    sig_left: np.ndarray,
    ids_left: np.ndarray,
    sig_right: np.ndarray,
    ids_right: np.ndarray,
    max_entries: int = BLOCK_ENTRIES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Within one block: each left row's best right row and each right row's best left row.

    Similarity is the inner product of signatures, rounded to ``SIM_DECIMALS``; ties go to the
    smaller id. Returns (left_ids, their best right ids, sims, right_ids, their best left ids, sims).
    The matrix is computed in slices of left rows of at most ``max_entries`` entries (bounded memory);
    a right row keeps the first slice's maximum on ties, so the result is the whole matrix's.
    """
    if len(ids_left) == 0 or len(ids_right) == 0:
        e = np.array([], dtype=np.float64)
        return ids_left[:0], ids_right[:0], e, ids_right[:0], ids_left[:0], e
    ol = np.argsort(ids_left, kind="stable")
    orr = np.argsort(ids_right, kind="stable")
    sl, il = sig_left[ol], ids_left[ol]
    sr, ir = sig_right[orr], ids_right[orr]
    n_l, n_r = len(il), len(ir)
    step = max(1, int(max_entries) // n_r)
    bl = np.empty(n_l, dtype=np.int64)
    sim_l = np.empty(n_l, dtype=np.float64)
    br = np.zeros(n_r, dtype=np.int64)
    sim_r = np.full(n_r, -np.inf)
    cols = np.arange(n_r)
    for start in range(0, n_l, step):
        g = rounded(sl[start : start + step] @ sr.T, SIM_DECIMALS)
        # argmax returns the first maximum: with ids sorted ascending that is the smaller id.
        a = g.argmax(axis=1)
        bl[start : start + len(a)] = a
        sim_l[start : start + len(a)] = g[np.arange(len(a)), a]
        c = _column_argmax(g)
        cm = g[c, cols]
        better = cm > sim_r  # strictly: an earlier slice (smaller ids) keeps a tie
        sim_r[better] = cm[better]
        br[better] = c[better] + start
    return il, ir[bl], sim_l, ir, il[br], sim_r


def cap_block(ids: np.ndarray, dist: np.ndarray, cap: int) -> np.ndarray:
    """Indices of the at most ``cap`` block members closest to the block's anchor (ties: smaller id)."""
    if len(ids) <= cap:
        return np.arange(len(ids))
    order = np.lexsort((ids, dist))
    return np.sort(order[:cap])


def block_matches(
    ids_left: np.ndarray,
    sig_left: np.ndarray,
    dist_left: np.ndarray,
    ids_right: np.ndarray,
    sig_right: np.ndarray,
    dist_right: np.ndarray,
    cap: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One block (view, key): cap it, then each side's best match within it (see block_best_matches)."""
    kl = cap_block(ids_left, dist_left, cap)
    kr = cap_block(ids_right, dist_right, cap)
    return block_best_matches(sig_left[kl], ids_left[kl], sig_right[kr], ids_right[kr])


def cell_centroids(vectors: np.ndarray, n_cells: int, seed: int, max_iter: int = 300) -> np.ndarray:
    """Blocking cells of a mapped nearest-neighbour search: k-means centroids (unit length) of vectors
    (at most ``max_iter`` Lloyd iterations; scikit-learn's default 300)."""
    if n_cells <= 1:
        return normalise_rows(np.asarray(vectors, dtype=np.float64).mean(axis=0, keepdims=True))
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=n_cells, n_init=1, max_iter=int(max_iter), random_state=int(seed)).fit(vectors)
    return normalise_rows(km.cluster_centers_)
