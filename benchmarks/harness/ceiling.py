"""What the data allows: the ceiling of ``design/benchmark.md``, a benchmark oracle (it reads the truth).

An orthogonal map (centred tables, as the linker centres them) is fitted on **half** of the true pairs;
those rows are removed from both tables; the CSLS mutual nearest neighbours of the remaining rows are
ranked by CSLS; the cut with the best F1, chosen with the truth, is scored on the other half (every row
that is left competes, partnered or not). Fitting on all true pairs is not a ceiling: with 300-600 pairs
in 384-768 dimensions the map interpolates its own training pairs.

Up to :data:`DENSE_CELLS` similarities the CSLS matching is one dense matrix
(:func:`veclink_spark.precision.csls_mutual`, as the final matching does it); beyond, four exact faiss
inner-product searches give the same matching without holding the matrix
(:func:`benchmarks.harness.baselines.csls_mutual_search`): at 200,000 rows a side the matrix alone would
be 160 GB. Beyond :data:`EXACT_ROWS` rows a side even those searches are out of reach (about 0.8
PFLOP each at a million rows, hours on two cores): each row searches the rows of the :data:`NPROBE`
k-means cells (of sqrt(rows)) nearest its own (:func:`benchmarks.harness.baselines.csls_mutual_search`),
and the result says how often that missed the exact answer on a sample (``search``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.harness.baselines import csls_mutual_search
from veclink_spark.kernels.centre import centred_table, centred_with, normalise_rows, table_mean
from veclink_spark.kernels.maps import CSLS_K, procrustes_map
from veclink_spark.precision import csls_mutual

#: Largest left x right similarity matrix matched densely (30,000 a side: 3.6 GB of float32).
DENSE_CELLS = 30_000 * 30_000
#: Largest table (rows a side) searched exactly; beyond, within :data:`NPROBE` k-means cells a row.
EXACT_ROWS = 300_000
NPROBE = 8


def _centred(table: np.ndarray, dtype: type) -> np.ndarray:
    """:func:`centred_table`; in float32, in blocks of 100,000 rows (its whole-table float64 copies of
    a million 768-d rows are 6 GB each)."""
    if dtype is np.float64:
        return centred_table(np.asarray(table, np.float64))
    blocks = [slice(i, i + 100_000) for i in range(0, len(table), 100_000)]
    mean = table_mean(sum(normalise_rows(table[b]).sum(axis=0) for b in blocks), len(table))
    out = np.empty(table.shape, np.float32)
    for b in blocks:
        out[b] = centred_with(normalise_rows(table[b]), mean)
    return out


def ceiling(
    left: np.ndarray, right: np.ndarray, truth_left: np.ndarray, truth_right: np.ndarray, seed: int = 0
) -> dict[str, Any]:
    """The ceiling of one split.

    Args:
        left, right: the split's tables (rows of vectors, any norm).
        truth_left, truth_right: row positions of every true pair.
        seed: which half of the true pairs fits the map.

    Returns:
        ``f1``, ``precision``, ``recall`` at the best cut; ``pairs_fitted``, ``pairs_scored``;
        ``recall_at_p95``: the largest recall of a cut with precision >= 0.95 (0.0 when none);
        ``search``: exact, or the approximate search and how often it missed.
    """
    audit: dict[str, float] = {}
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(truth_left))
    fit, held = order[: len(order) // 2], order[len(order) // 2 :]
    nprobe = NPROBE if max(len(left), len(right)) > EXACT_ROWS else 0
    dtype = np.float32 if nprobe else np.float64  # memory: a million rows of 768 float64 are 6 GB
    x, y = _centred(left, dtype), _centred(right, dtype)
    w = procrustes_map(np.asarray(x[truth_left[fit]].T @ y[truth_right[fit]], np.float64))
    keep_l = np.setdiff1d(np.arange(len(x)), truth_left[fit])
    keep_r = np.setdiff1d(np.arange(len(y)), truth_right[fit])
    if len(keep_l) * len(keep_r) <= DENSE_CELLS:
        rows, cols, score = csls_mutual((x[keep_l] @ w) @ y[keep_r].T)
    else:
        xm = x[keep_l] @ w.astype(dtype)
        del x
        rows, cols, score = csls_mutual_search(xm, y[keep_r], CSLS_K, nprobe, audit)
    ml, mr = keep_l[rows], keep_r[cols]
    partner = dict(zip(truth_left[held].tolist(), truth_right[held].tolist(), strict=True))
    right_pair = np.array([partner.get(a) == b for a, b in zip(ml.tolist(), mr.tolist(), strict=True)])
    ranked = right_pair[np.argsort(-score, kind="stable")]
    tp = np.cumsum(ranked)
    n = np.arange(1, len(ranked) + 1)
    precision, recall = tp / n, tp / max(len(held), 1)
    f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    k = int(np.argmax(f1)) if len(f1) else 0
    at95 = recall[precision >= 0.95]
    return {
        "f1": float(f1[k]) if len(f1) else 0.0,
        "precision": float(precision[k]) if len(f1) else 0.0,
        "recall": float(recall[k]) if len(f1) else 0.0,
        "recall_at_p95": float(at95.max()) if len(at95) else 0.0,
        "pairs_fitted": int(len(fit)),
        "pairs_scored": int(len(held)),
        "search": (
            f"{NPROBE} of sqrt(rows) k-means cells a row; on 2,000 sampled rows r exact for "
            f"{audit['r_exact']:.3f}, the nearest row exact for {audit['nearest_exact']:.3f}"
            if audit
            else "exact"
        ),
    }
