"""Maps: the refinement's Procrustes maps and the CSLS search in the mapped space.

Serves ``refine`` rounds and the model's polish: orthogonal maps fitted on the links
(:func:`procrustes_map`, on bags of them: :func:`bag_flags`), each block's CSLS best matches
(:func:`csls_block`, run in executors and in process alike, with the stochastic dropout of
:func:`keep_mask`), the score a pair gets from its rows' neighbourhoods (:func:`csls_score`) and the
take-off's progress measure (:func:`take_off_objective`). Also the seed check's isometry measure
(:func:`seed_consistency`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from .centre import SIM_DECIMALS, pairwise_distances, rounded
from .samples import id_hashes, splitmix

# Decimals of the take-off objective (the mean CSLS r_k of the rows, both sides): its summation order
# differs between the backends, so it is rounded before the engine compares it.
OBJECTIVE_DECIMALS = 6


#: Decimals the cross-covariances are rounded to before the Procrustes SVD (summation-order noise
#: between backends must not change the maps).
CROSS_DECIMALS = 10

#: Neighbours of the CSLS hubness correction: a row's r is the mean of its 10 best similarities (as in
#: VecMap and MUSE). The rounds' block search and the precision estimate both score with it.
CSLS_K = 10


def procrustes_map(cross: np.ndarray, decimals: int | None = None) -> np.ndarray:
    """Orthogonal (semi-orthogonal if d1 != d2) map W minimising ||X W - Y|| given cross = X^T Y.

    W = U_r V_r^T from the thin SVD of X^T Y, keeping only the r directions the pairs determine (r = the
    numerical rank, counted as ``numpy.linalg.matrix_rank`` does). With 15 seeds in 384-768 dimensions
    the textbook map's remaining directions are an arbitrary completion chosen by LAPACK that swamps the
    15 informative ones (measured: self-learning from the truncated start takes off where the textbook
    start settles on a wrong dictionary; docs/method.md); with pairs spanning the space, r is full and
    this is the textbook map. (scipy.linalg.orthogonal_procrustes handles square, full-rank maps only.)

    ``decimals``: round ``cross`` first. Rounding adds up to 0.5e-``decimals`` to every entry, i.e. a
    spectral perturbation up to sqrt(d1 d2) times that, so the rank threshold is raised to twice that
    bound (without it the rounding noise counts as signal and a 15-pair map comes out full rank).
    """
    cross = np.asarray(cross, dtype=np.float64)
    tol_abs = 0.0
    if decimals is not None:
        cross = np.round(cross, decimals)
        tol_abs = 2.0 * np.sqrt(cross.shape[0] * cross.shape[1]) * 0.5 * 10.0 ** (-decimals)
    u, s, vt = np.linalg.svd(cross, full_matrices=False)
    if s.size and s[0] > 0:
        tol = max(s[0] * max(cross.shape) * np.finfo(np.float64).eps, tol_abs)
        rank = int((s > tol).sum())
        u, vt = u[:, :rank], vt[:rank]
    return u @ vt


def seed_consistency(seeds_left: np.ndarray, seeds_right: np.ndarray) -> float:
    """Spearman correlation of seed-to-seed distances in the two spaces (local isometry check)."""
    from scipy.stats import spearmanr

    k = len(seeds_left)
    if k < 3:
        return float("nan")
    iu = np.triu_indices(k, 1)
    a = pairwise_distances(seeds_left, seeds_left)[iu]
    b = pairwise_distances(seeds_right, seeds_right)[iu]
    rho = spearmanr(a, b).statistic
    return float(rho)


def take_off_objective(mean_r_left: float | None, mean_r_right: float | None) -> float | None:
    """The take-off's progress measure from the means of the rows' CSLS r_k on each side (r_k: the
    mean of a mapped left row's k best similarities to the right table, and the other way).

    VecMap measures progress by the mean best similarity, unmasked by the dropout; the r_k are that
    measure averaged over k neighbours (smoother), and both backends already compute them for CSLS.
    It rises while the map aligns more of the two tables and levels off when a kept share has done
    what it can (docs/method.md). None when a side has no rows.
    """
    if mean_r_left is None or mean_r_right is None:
        return None
    return round((float(mean_r_left) + float(mean_r_right)) / 2.0, OBJECTIVE_DECIMALS)


class BlockBest(NamedTuple):
    """Every row's best match within one block of a refine round (rows sorted by id).

    ``left``: the left ids with a match, ``left_best``: their best right ids, ``left_score``: the CSLS
    score, ``left_r``: the left rows' neighbourhood means r, ``left_cos``: the pair's similarity;
    ``right...`` the same for the right rows.
    """

    left: np.ndarray
    left_best: np.ndarray
    left_score: np.ndarray
    left_r: np.ndarray
    right: np.ndarray
    right_best: np.ndarray
    right_score: np.ndarray
    right_r: np.ndarray
    left_cos: np.ndarray
    right_cos: np.ndarray


#: Width of the runs whose maxima bound a row's k-th largest similarity from below (:func:`_top_k`).
TOP_RUN = 8


def _top_mean(g: np.ndarray, k: int, axis: int = 1) -> np.ndarray:
    """Mean of the ``k`` largest values of each row (``axis`` 1) or column (``axis`` 0) of ``g``, rounded
    to ``SIM_DECIMALS``: the sorted top k of each line, averaged as numpy averages a sorted partition of
    that line (of ``g``, or of ``g.T`` for the columns, whose layout sets the order of the sum)."""
    top = _top_k(g, min(k, g.shape[axis]), axis)
    return np.round(np.sort(top, axis=1).mean(axis=1), SIM_DECIMALS)


def _top_k(g: np.ndarray, k: int, axis: int) -> np.ndarray:
    """The ``k`` largest values of each line of ``g`` along ``axis`` (in any order), one line a row, laid
    out as ``np.partition`` of ``g`` (rows) or of ``g.T`` (columns) leaves them.

    A partition of every line of a block costs as much as its matrix product. Instead each line is cut
    into runs of :data:`TOP_RUN` values and only the ``k`` runs with the largest maxima (and the few
    values after the last whole run) are searched: a value of the line's top k outside them would have
    ``k`` run maxima at least as large, so these runs alone hold a multiset of top k, the one a partition
    of the whole line finds, ties included. The run maxima are one streaming pass over the block.
    """
    n_lines, length = g.shape[1 - axis], g.shape[axis]
    runs = length // TOP_RUN
    if k < 1 or runs < 2 * k:
        if axis == 1:
            return np.partition(g, length - k, axis=1)[:, length - k :]
        return np.partition(g.T, length - k, axis=1)[:, length - k :]
    cut = runs * TOP_RUN
    member = np.arange(TOP_RUN)
    if axis == 1:
        # a row's run j is its columns j, j + runs, ...: the maxima reduce the middle axis, which streams
        # through memory (a reduction over a short last axis does not)
        maxima = g[:, :cut].reshape(n_lines, TOP_RUN, runs).max(axis=1)
        best = np.argpartition(maxima, runs - k, axis=1)[:, runs - k :]
        cols = (best[:, :, None] + member[None, None, :] * runs).reshape(n_lines, k * TOP_RUN)
        values = np.concatenate([g[np.arange(n_lines)[:, None], cols], g[:, cut:]], axis=1)
        return np.partition(values, values.shape[1] - k, axis=1)[:, values.shape[1] - k :]
    # a column's run j is its rows j * TOP_RUN ... j * TOP_RUN + TOP_RUN - 1
    maxima = g[:cut].reshape(runs, TOP_RUN, n_lines).max(axis=1)
    best = np.argpartition(maxima, runs - k, axis=0)[runs - k :]
    rows = (best[:, None, :] * TOP_RUN + member[None, :, None]).reshape(k * TOP_RUN, n_lines)
    values = np.concatenate([g[rows, np.arange(n_lines)[None, :]], g[cut:]], axis=0)
    # (k, lines) rows, seen transposed: the column-major layout of a partition of g.T, so that the mean
    # adds in the same order
    return np.partition(values, values.shape[0] - k, axis=0)[values.shape[0] - k :].T


#: Rows of a block matrix scored at a time by :func:`_csls_best` (a chunk of about 1 MiB stays in cache).
CHUNK_VALUES = 1 << 17


def _csls_best(
    g: np.ndarray,
    r_left: np.ndarray,
    r_right: np.ndarray,
    mask: Callable[[slice], np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each row's and each column's first maximum of the CSLS matrix of ``g`` (:func:`csls_score`, pairs
    where ``mask(rows)`` is False dropped as -inf) and its score: (row best, row score, column best,
    column score). The matrix is scored a chunk of rows at a time and never held whole: the same
    numbers as ``c.argmax(axis=1)`` and ``c.argmax(axis=0)`` of the whole, in a fraction of the memory
    traffic."""
    n, m = g.shape
    step = max(1, CHUNK_VALUES // max(m, 1))
    row_best = np.zeros(n, dtype=np.int64)
    row_score = np.empty(n)
    col_best = np.zeros(m, dtype=np.int64)
    col_score = np.full(m, -np.inf)
    for start in range(0, n, step):
        rows = slice(start, min(n, start + step))
        c = csls_score(g[rows], r_left[rows, None], r_right[None, :])
        if mask is not None:
            c = np.where(mask(rows), c, -np.inf)
        best = c.argmax(axis=1)
        row_best[rows] = best
        row_score[rows] = c[np.arange(len(best)), best]
        top = c.max(axis=0)
        better = top > col_score  # strictly: an earlier row keeps a tie, as argmax's first maximum
        if better.any():
            cols = np.nonzero(better)[0]
            col_best[cols] = start + c[:, cols].argmax(axis=0)
            col_score[cols] = top[cols]
    return row_best, row_score, col_best, col_score


def csls_block(
    ids_left: np.ndarray,
    sig_left: np.ndarray,
    ids_right: np.ndarray,
    sig_right: np.ndarray,
    k: int,
    keep: float = 1.0,
    salt: int = 0,
) -> BlockBest:
    """One block of a refine round in one matrix product: each row's best match by CSLS.

    CSLS = 2 cos - r_left - r_right (Conneau et al. 2018, hubness-corrected), where a row's r is the
    mean of its ``k`` highest similarities within this block. Taken per block, so that one pass over
    each block is the whole round (the per-table r needed a top-k pass, a merge per row and a second
    pass: three shuffles of the signatures on Spark); a row's nearest neighbours lie almost all in its
    own cell. Similarities are computed in float64 from the signatures and rounded to ``SIM_DECIMALS``,
    ties go to the smaller id.

    With ``keep`` < 1 each pair takes part only if :func:`keep_mask` keeps it (VecMap's stochastic
    dictionary induction: a random share of the similarities is dropped before the argmax); r is
    measured before the dropout. A row whose every pair was dropped has no match here.
    """
    if len(ids_left) == 0 or len(ids_right) == 0:
        e = np.array([], dtype=np.float64)
        return BlockBest(ids_left[:0], ids_right[:0], e, e, ids_right[:0], ids_left[:0], e, e, e, e)
    ol = np.argsort(ids_left, kind="stable")
    orr = np.argsort(ids_right, kind="stable")
    sl = np.asarray(sig_left[ol], dtype=np.float64)
    sr = np.asarray(sig_right[orr], dtype=np.float64)
    g = rounded(sl @ sr.T, SIM_DECIMALS)
    r_left, r_right = _top_mean(g, k), _top_mean(g, k, axis=0)
    il, ir = ids_left[ol], ids_right[orr]
    mask = None
    if keep < 1.0:

        def mask(rows: slice) -> np.ndarray:
            return keep_mask(il[rows], ir, keep, salt)

    bl, sl_best, br, sr_best = _csls_best(g, r_left, r_right, mask)
    al, ar = np.arange(len(il)), np.arange(len(ir))
    okl, okr = np.isfinite(sl_best), np.isfinite(sr_best)
    return BlockBest(
        il[okl],
        ir[bl][okl],
        sl_best[okl],
        r_left[okl],
        ir[okr],
        il[br][okr],
        sr_best[okr],
        r_right[okr],
        g[al, bl][okl],
        g[br, ar][okr],
    )


def csls_score(cos: np.ndarray, r_left: np.ndarray, r_right: np.ndarray) -> np.ndarray:
    """CSLS = 2 cos - r_left - r_right, rounded to ``SIM_DECIMALS``: :func:`csls_block`'s score
    (there on the block matrix, r broadcast), so a pair re-scored with its own block's r gets its block
    score back bit for bit.

    A row of a blocked round meets several blocks, each with its own r (the mean of its k best
    similarities there). The round picks each row's best match per block, by that block's CSLS; a
    mutual pair is then scored with each row's largest r over its blocks (the neighbourhood it is most
    crowded in), not the r of the block where the pair met (a full-table round also chooses each row's
    match across its blocks by that score,
    :func:`veclink_spark.backends.in_process.crowded_mutual_nearest`). Measured on the 117k WordNet pair's
    full-table rounds (MiniLM-L6 / L3, 76,478 rows a side, 77 cells, 3 probes each side; scratch
    numpy from the run's own map): the mixture cut then keeps P 0.965, R 0.787 (F1 0.867) where the
    meeting block's r keeps P 0.960, R 0.722 (0.824); the mean of the merged top-k over the blocks
    did worse (0.822). Far from its own blocks a one-sided row's best match scores high against a
    sparse block; its most crowded block says how high its best matches score anyway.
    """
    c = 2.0 * np.asarray(cos, dtype=np.float64)
    c -= r_left
    c -= r_right
    return rounded(c, SIM_DECIMALS)


def keep_mask(ids_left: np.ndarray, ids_right: np.ndarray, keep: float, salt: int) -> np.ndarray:
    """Deterministic dropout of pairs: (n_left, n_right) booleans, True for about ``keep`` of them.

    A pair's fate depends only on its two ids and ``salt`` (not on the block or the engine), so every
    block and both engines drop the same pairs. Hand-written because it must be a vectorised function
    of the id pair: splitmix64's finaliser over a mix of the two id hashes.
    """
    with np.errstate(over="ignore"):
        x = (
            id_hashes(ids_left)[:, None] * np.uint64(0x9E3779B97F4A7C15)
            + id_hashes(ids_right)[None, :] * np.uint64(0xC2B2AE3D27D4EB4F)
            + np.uint64(int(salt) % 2**64)
        )
    x = splitmix(x)
    return (x >> np.uint64(11)).astype(np.float64) < keep * 2.0**53


def bag_limits(n_bags: int, fraction: float | Sequence[float]) -> list[float]:
    """Each bag's CRC32 limit: ``fraction`` (one for all bags, or one per bag) times 2^32."""
    if isinstance(fraction, (int, float)):
        fractions = [float(fraction)] * n_bags
    else:
        fractions = [float(f) for f in fraction]
    if len(fractions) != n_bags:
        raise ValueError(f"{len(fractions)} bag fractions for {n_bags} bags")
    return [f * 2**32 for f in fractions]


def bag_flags(
    left_ids: np.ndarray, right_ids: np.ndarray, n_bags: int, fraction: float | Sequence[float], salt: int
) -> np.ndarray:
    """Deterministic bag membership of pairs: (n, n_bags) booleans.

    A pair is in bag b when crc32("left|right|b|salt") < fraction_b * 2^32 (:func:`bag_limits`; a
    fraction of 1 keeps every pair). CRC32 is used because Spark SQL's ``crc32`` computes the very same
    function, so executors and the reference agree without bringing the pairs to the driver.
    """
    import zlib

    limits = bag_limits(n_bags, fraction)
    out = np.zeros((len(left_ids), n_bags), dtype=bool)
    for i, (a, b) in enumerate(
        zip(np.asarray(left_ids).tolist(), np.asarray(right_ids).tolist(), strict=False)
    ):
        for bag in range(n_bags):
            out[i, bag] = zlib.crc32(f"{a}|{b}|{bag}|{salt}".encode()) < limits[bag]
    return out
