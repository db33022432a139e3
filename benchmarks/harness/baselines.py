"""Classical baselines for vector linking, each ending in one-to-one mutual-nearest-neighbour links.

Every baseline takes the left vectors ``X`` (N1, d1), the right vectors ``Y`` (N2, d2) and the seed
pairs as row-index arrays, and returns :class:`Links` (left row index, right row index, score).
Shared choices, applied the same way to every baseline so they compare fairly:

* **Map, then mutual NN.** A baseline maps one or both sides into a common space; mapped vectors are
  L2-normalised and candidate links are mutual nearest neighbours under cosine (faiss ``IndexFlatIP``,
  exact). Mutual NN is one-to-one by construction.
* **Seed rows are left out of the matching.** The seeds are known pairs, so their rows take no part in
  the nearest-neighbour search and the output holds only new links (a linker never re-links a seed's
  row to something else). Scoring excludes seeds anyway.
* **Different dimensions.** Orthogonal Procrustes uses the semi-orthogonal solution
  ``W = U V^T`` from the thin SVD ``X_s^T Y_s = U S V^T`` (``W`` is d1 x d2 with orthonormal columns or
  rows). It equals zero-padding the smaller side to the larger dimension and solving the square
  orthogonal Procrustes problem, restricted to the real coordinates. With n seeds < d, ``X_s^T Y_s`` has
  rank <= n and the rest of ``W`` is arbitrary: that is what Procrustes on 15 seeds is.
* **Self-learning Procrustes (VecMap style, Artetxe et al. 2018)**: VecMap's normalisation (unit length,
  mean centring, unit length), Procrustes on the seeds, then repeatedly: induce a dictionary of mutual
  nearest neighbours under CSLS (k = 10, Conneau et al. 2018) over all non-seed rows, refit Procrustes
  on seeds + dictionary; stop when the dictionary no longer changes or after 30 iterations. Not
  included from full VecMap: whitening / re-weighting / de-whitening and stochastic dictionary
  induction. Its output is the final CSLS mutual-NN dictionary (score = CSLS).
  Its Procrustes fits keep only the directions the pairs determine (``truncate_rank=True``): with 15
  seeds in 384-768 dimensions the textbook map's arbitrary completion swamps the 15 informative
  directions, and the loop then converges on a self-consistent wrong dictionary (measured on Debian
  mpnet -> MiniLM-L6: F1 5.6 % with the textbook start, 81.9 % with the truncated one). The refits on
  the induced dictionaries (thousands of pairs) are full rank, so truncation changes only the start.

Everything here is in-process numpy / scikit-learn / faiss; nothing is fitted on non-seed truth
except by the ``oracle_*`` helpers, which exist to measure a ceiling and say so in their names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np
from sklearn.cross_decomposition import CCA
from sklearn.linear_model import RidgeCV
from sklearn.neural_network import MLPRegressor
from threadpoolctl import threadpool_limits

from veclink_spark.errors import InputError

log = logging.getLogger(__name__)

MapFn = Callable[..., tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Links:
    """One-to-one links between row indices of the left and right tables.

    Attributes:
        left_index: int64 row indices into X.
        right_index: int64 row indices into Y (same length).
        score: float32 similarity of each link (cosine in the common space, or CSLS where stated).
        info: free-form diagnostics (for example the number of self-learning iterations).
    """

    left_index: np.ndarray
    right_index: np.ndarray
    score: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.left_index.shape[0])


def _unit(x: np.ndarray) -> np.ndarray:
    """Float32, C-contiguous, unit-norm rows (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12))


def _check_inputs(
    x: np.ndarray, y: np.ndarray, left: np.ndarray, right: np.ndarray, min_pairs: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] == 0 or y.shape[0] == 0:
        raise InputError(f"X and Y must be non-empty 2-D arrays, got shapes {x.shape} and {y.shape}")
    left = np.asarray(left, dtype=np.int64).reshape(-1)
    right = np.asarray(right, dtype=np.int64).reshape(-1)
    if left.shape != right.shape:
        raise InputError(f"seed index arrays differ in length: {left.shape[0]} left, {right.shape[0]} right")
    if left.shape[0] < min_pairs:
        raise InputError(f"this baseline needs at least {min_pairs} seed pairs, got {left.shape[0]}")
    if left.size and (
        left.min() < 0 or left.max() >= x.shape[0] or right.min() < 0 or right.max() >= y.shape[0]
    ):
        raise InputError("seed indices out of range: they must be row positions in X (left) and Y (right)")
    return x.astype(np.float32), y.astype(np.float32), left, right


def _search(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact maximum-inner-product search: (similarities, indices) of the k best rows of ``base``."""
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def mutual_nearest_links(
    xm: np.ndarray,
    ym: np.ndarray,
    exclude_left: np.ndarray | None = None,
    exclude_right: np.ndarray | None = None,
    csls_k: int = 0,
) -> Links:
    """One-to-one links by mutual nearest neighbours between two sets of vectors in one space.

    Args:
        xm: mapped left vectors (N1, k); normalised here.
        ym: mapped right vectors (N2, k); normalised here.
        exclude_left: left row indices kept out of the matching (e.g. the seeds).
        exclude_right: right row indices kept out of the matching.
        csls_k: 0 for plain cosine; > 0 for CSLS with that neighbourhood size
            (CSLS(x, y) = 2 cos(x, y) - r_Y(x) - r_X(y), r = mean cosine to the k nearest on the other side).

    Returns:
        :class:`Links` with indices into the full ``xm`` / ``ym`` and score = cosine or CSLS.

    Raises:
        InputError: the two sides differ in dimension.
    """
    if xm.shape[1] != ym.shape[1]:
        raise InputError(f"mapped sides differ in dimension: {xm.shape[1]} vs {ym.shape[1]}")
    keep_l = np.setdiff1d(np.arange(xm.shape[0]), exclude_left if exclude_left is not None else [])
    keep_r = np.setdiff1d(np.arange(ym.shape[0]), exclude_right if exclude_right is not None else [])
    empty = Links(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))
    if keep_l.size == 0 or keep_r.size == 0:
        return empty
    a, b = _unit(xm[keep_l]), _unit(ym[keep_r])
    if csls_k > 0:
        li, ri, score = csls_mutual_search(a, b, csls_k)
    else:
        _, fwd = _search(b, a, 1)
        _, bwd = _search(a, b, 1)
        fwd, bwd = fwd[:, 0], bwd[:, 0]
        li = np.flatnonzero(bwd[fwd] == np.arange(a.shape[0]))
        ri = fwd[li]
        score = np.einsum("ij,ij->i", a[li], b[ri])
    return Links(keep_l[li].astype(np.int64), keep_r[ri].astype(np.int64), score.astype(np.float32))


Groups = list[tuple[np.ndarray, np.ndarray]]


def _cells(base: np.ndarray, queries: np.ndarray, nprobe: int) -> Groups:
    """An approximate search's blocks: faiss k-means cuts ``base`` into sqrt(rows) cells; each query
    joins its nearest cell, and a cell's queries search the base rows of its ``nprobe`` nearest cells
    (itself first). Hand-blocked rather than faiss's IndexIVFFlat: that scans each query's lists one
    vector at a time (about 6 GFLOP/s measured here), where one matrix product per cell runs at BLAS
    speed."""
    base = np.ascontiguousarray(base, dtype=np.float32)
    nlist = max(1, int(np.sqrt(len(base))))
    km = faiss.Kmeans(base.shape[1], nlist, niter=10, seed=0, max_points_per_centroid=64)
    km.train(base)
    base_cell = km.index.search(base, 1)[1][:, 0]
    query_cell = km.index.search(np.ascontiguousarray(queries, dtype=np.float32), 1)[1][:, 0]
    near = km.index.search(km.centroids, min(nprobe, nlist))[1]

    def by_cell(cell: np.ndarray) -> list[np.ndarray]:
        return np.split(np.argsort(cell, kind="stable"), np.cumsum(np.bincount(cell, minlength=nlist))[:-1])

    members = by_cell(base_cell)
    return [
        (rows, np.concatenate([members[m] for m in near[c]]))
        for c, rows in enumerate(by_cell(query_cell))
        if len(rows)
    ]


def _blocked(base: np.ndarray, queries: np.ndarray, k: int, groups: Groups) -> np.ndarray:
    """An exact search within the blocks of :func:`_cells`, 2,048 queries at a time: each query's mean
    similarity to its ``k`` best candidates (CSLS's r; over all its candidates where there are fewer)
    or, with ``k`` 0, its best candidate's row. Values by np.partition: the k best need no order, and
    argpartition costs three times as much here."""
    base = np.ascontiguousarray(base, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    out = np.full(len(queries), -1, np.int64) if k == 0 else np.zeros(len(queries), np.float32)
    for rows, cand in groups:
        block = base[cand]
        for part in np.array_split(rows, -(-len(rows) // 2048)):
            sims = queries[part] @ block.T
            if k == 0:
                out[part] = cand[sims.argmax(axis=1)]
            else:
                kk = min(k, len(cand))
                out[part] = np.partition(sims, -kk, axis=1)[:, -kk:].mean(axis=1)
    return out


def csls_mutual_search(
    a: np.ndarray, b: np.ndarray, k: int, nprobe: int = 0, audit: dict[str, float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSLS mutual nearest neighbours of ``a @ b.T`` (rows as given, not normalised here) without the
    matrix: (rows of ``a``, their rows of ``b``, CSLS scores), as
    :func:`veclink_spark.precision.csls_mutual` gives them from the matrix (up to float32 ties). r: the
    mean of a row's ``k`` best similarities on the other side; argmax_j CSLS(i, j) = argmax_j
    <[2 a_i, -1], [b_j, r_b(j)]>, one more exact inner-product search per side. faiss rather than a
    hand-blocked numpy loop: it blocks the product and keeps the top k per row itself.

    ``nprobe`` > 0: the four searches are approximate, within the blocks of :func:`_cells` (of the
    plain vectors, for all four), and ``audit`` (when given) receives how often they miss on 2,000
    random rows of ``a``, against an exact scan of those rows: ``r_exact``, the share whose ``r`` is
    exact (to 1e-4), and ``nearest_exact``, the share whose CSLS nearest row of ``b`` is the exact one
    (under the searched ``r`` of ``b``'s rows).
    """
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    a_q = np.hstack([2 * a, -np.ones((a.shape[0], 1), np.float32)])
    b_q = np.hstack([2 * b, -np.ones((b.shape[0], 1), np.float32)])
    if nprobe > 0:
        on_b, on_a = _cells(b, a, nprobe), _cells(a, b, nprobe)
        r_a = _blocked(b, a, min(k, b.shape[0]), on_b)  # r_Y(x)
        r_b = _blocked(a, b, min(k, a.shape[0]), on_a)  # r_X(y)
        fwd = _blocked(np.hstack([b, r_b[:, None]]), a_q, 0, on_b)
        bwd = _blocked(np.hstack([a, r_a[:, None]]), b_q, 0, on_a)
    else:
        r_a = _search(b, a, min(k, b.shape[0]))[0].mean(axis=1)  # r_Y(x)
        r_b = _search(a, b, min(k, a.shape[0]))[0].mean(axis=1)  # r_X(y)
        fwd = _search(np.hstack([b, r_b[:, None].astype(np.float32)]), a_q, 1)[1][:, 0]
        bwd = _search(np.hstack([a, r_a[:, None].astype(np.float32)]), b_q, 1)[1][:, 0]
    rows = np.flatnonzero(bwd[fwd] == np.arange(a.shape[0]))
    cols = fwd[rows]
    score = 2 * np.einsum("ij,ij->i", a[rows], b[cols]) - r_a[rows] - r_b[cols]
    if nprobe > 0 and audit is not None:
        probe = np.sort(np.random.default_rng(1).choice(a.shape[0], min(a.shape[0], 2000), replace=False))
        kk = min(k, b.shape[0])
        r_exact, nearest = [], []
        for part in np.array_split(probe, -(-len(probe) // 100)):  # 100 x rows of b at a time
            sims = a[part] @ b.T
            r_exact.append(np.partition(sims, -kk, axis=1)[:, -kk:].mean(axis=1))
            nearest.append(np.argmax(2 * sims - r_b[None, :], axis=1))
        audit["r_exact"] = float(np.mean(np.abs(np.concatenate(r_exact) - r_a[probe]) <= 1e-4))
        audit["nearest_exact"] = float(np.mean(np.concatenate(nearest) == fwd[probe]))
    return rows, cols, score


# ----------------------------------------------------------------------------------------------------
# Maps: each fits on the given pairs and returns (left in common space, right in common space).


def procrustes_map(
    x: np.ndarray, y: np.ndarray, left: np.ndarray, right: np.ndarray, truncate_rank: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonal Procrustes: ``X W`` vs ``Y`` with W = U V^T from the thin SVD of ``X_s^T Y_s``.

    Semi-orthogonal when d1 != d2 (equivalent to zero-padding the smaller side; see the module doc).

    Args:
        truncate_rank: False (default): the textbook solution, whose singular directions beyond the rank
            of ``X_s^T Y_s`` (rank <= number of pairs) are an arbitrary orthonormal completion chosen by
            LAPACK. True: keep only the directions the pairs determine (``W = U_r V_r^T``, r = numerical
            rank, as ``numpy.linalg.matrix_rank`` counts it); identical to the textbook map when the
            pairs span the space.
    """
    x, y, left, right = _check_inputs(x, y, left, right)
    m = x[left].T.astype(np.float64) @ y[right].astype(np.float64)
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    if truncate_rank and s.size:
        rank = int((s > s[0] * max(m.shape) * np.finfo(np.float64).eps).sum())
        u, vt = u[:, :rank], vt[:rank]
    w = (u @ vt).astype(np.float32)
    return x @ w, y


def cca_map(
    x: np.ndarray, y: np.ndarray, left: np.ndarray, right: np.ndarray, n_components: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """CCA fitted on the pairs (scikit-learn, ``scale=True``); both sides projected on the components.

    Args:
        n_components: default and maximum: min(pairs - 1, d1, d2).
    """
    x, y, left, right = _check_inputs(x, y, left, right, min_pairs=2)
    cap = min(left.shape[0] - 1, x.shape[1], y.shape[1])
    k = cap if n_components is None else min(int(n_components), cap)
    cca = CCA(n_components=k, scale=True, max_iter=1000)
    cca.fit(x[left], y[right])
    xm, ym = cca.transform(x, y)
    return np.asarray(xm, np.float32), np.asarray(ym, np.float32)


def least_squares_map(
    x: np.ndarray,
    y: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    alphas: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression X -> Y on the pairs (with intercept); ridge strength by leave-one-out (RidgeCV).

    One shared ridge strength for all outputs, picked from ``alphas`` by efficient leave-one-out error.
    """
    x, y, left, right = _check_inputs(x, y, left, right, min_pairs=2)
    model = RidgeCV(alphas=alphas, fit_intercept=True).fit(x[left], y[right])
    log.debug("least squares: ridge alpha %.3g", model.alpha_)
    return model.predict(x).astype(np.float32), y


def mlp_map(
    x: np.ndarray,
    y: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    hidden: int = 256,
    l2: float = 1e-3,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One-hidden-layer MLP regression X -> Y on the pairs (scikit-learn MLPRegressor).

    ReLU hidden layer of ``hidden`` units, L2 penalty ``l2``, L-BFGS (scikit-learn's advice for small
    data), up to 2000 iterations, fixed ``random_state``.
    """
    x, y, left, right = _check_inputs(x, y, left, right, min_pairs=2)
    model = MLPRegressor(
        hidden_layer_sizes=(hidden,),
        activation="relu",
        solver="lbfgs",
        alpha=l2,
        max_iter=2000,
        random_state=random_state,
    )
    # One BLAS thread: on seed-sized matrices threads only add overhead (measured 150 s vs 8 s on a busy
    # 2-core box) and their summation order makes the L-BFGS path differ from run to run.
    with threadpool_limits(limits=1, user_api="blas"):
        model.fit(x[left], y[right])
    return model.predict(x).astype(np.float32), y


def relative_map(
    x: np.ndarray, y: np.ndarray, left: np.ndarray, right: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Relative representations (Moschella et al. 2023): cosine to each seed anchor, centred per anchor.

    Each vector becomes its cosines to the n anchors of its own side; each of the n columns is centred
    by its mean over that side's vectors (on the unit sphere raw cosines to anchors are all alike);
    rows are normalised by the matcher.
    """
    x, y, left, right = _check_inputs(x, y, left, right)
    rx = _unit(x) @ _unit(x[left]).T
    ry = _unit(y) @ _unit(y[right]).T
    return rx - rx.mean(axis=0, keepdims=True), ry - ry.mean(axis=0, keepdims=True)


# ----------------------------------------------------------------------------------------------------
# Baselines: fit on the seeds, then mutual NN with the seed rows left out.


def map_and_link(
    map_fn: MapFn,
    x: np.ndarray,
    y: np.ndarray,
    fit_left: np.ndarray,
    fit_right: np.ndarray,
    exclude_left: np.ndarray,
    exclude_right: np.ndarray,
    csls_k: int = 0,
    **kwargs: Any,
) -> Links:
    """Fit ``map_fn`` on the pairs (fit_left, fit_right), map both sides, link by mutual NN.

    Args:
        map_fn: one of the ``*_map`` functions.
        fit_left, fit_right: row indices of the pairs to fit on.
        exclude_left, exclude_right: rows kept out of the matching (the seeds).
        csls_k: 0 for cosine mutual NN, > 0 for CSLS.
        **kwargs: passed to ``map_fn``.
    """
    xm, ym = map_fn(x, y, fit_left, fit_right, **kwargs)
    return mutual_nearest_links(xm, ym, exclude_left, exclude_right, csls_k=csls_k)


def procrustes_links(x: np.ndarray, y: np.ndarray, seed_left: np.ndarray, seed_right: np.ndarray) -> Links:
    """Orthogonal Procrustes on the seeds, then cosine mutual NN."""
    return map_and_link(procrustes_map, x, y, seed_left, seed_right, seed_left, seed_right)


def cca_links(x: np.ndarray, y: np.ndarray, seed_left: np.ndarray, seed_right: np.ndarray) -> Links:
    """CCA (n_seeds - 1 components) on the seeds, then cosine mutual NN in the canonical space."""
    return map_and_link(cca_map, x, y, seed_left, seed_right, seed_left, seed_right)


def least_squares_links(x: np.ndarray, y: np.ndarray, seed_left: np.ndarray, seed_right: np.ndarray) -> Links:
    """Ridge least-squares map X -> Y on the seeds (LOO-chosen strength), then cosine mutual NN."""
    return map_and_link(least_squares_map, x, y, seed_left, seed_right, seed_left, seed_right)


def mlp_links(
    x: np.ndarray, y: np.ndarray, seed_left: np.ndarray, seed_right: np.ndarray, random_state: int = 0
) -> Links:
    """One-hidden-layer MLP X -> Y on the seeds, then cosine mutual NN."""
    return map_and_link(
        mlp_map, x, y, seed_left, seed_right, seed_left, seed_right, random_state=random_state
    )


def relative_links(x: np.ndarray, y: np.ndarray, seed_left: np.ndarray, seed_right: np.ndarray) -> Links:
    """Relative representations to the seed anchors (centred), then cosine mutual NN."""
    return map_and_link(relative_map, x, y, seed_left, seed_right, seed_left, seed_right)


def vecmap_normalise(x: np.ndarray) -> np.ndarray:
    """VecMap's default normalisation: unit length, mean centring, unit length."""
    x = _unit(x)
    return _unit(x - x.mean(axis=0, keepdims=True))


def self_learning_links(
    x: np.ndarray,
    y: np.ndarray,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
    csls_k: int = 10,
    max_iter: int = 30,
) -> Links:
    """VecMap-style self-learning Procrustes (see the module doc for what is and is not included).

    Args:
        csls_k: CSLS neighbourhood for dictionary induction.
        max_iter: cap on refits after the seed-only fit.

    Returns:
        The final CSLS mutual-NN dictionary (seeds excluded), ``info`` holding ``iterations``,
        ``converged`` and ``dictionary_sizes`` (per iteration).
    """
    x, y, seed_left, seed_right = _check_inputs(x, y, seed_left, seed_right)
    xn, yn = vecmap_normalise(x), vecmap_normalise(y)
    fit_l, fit_r = seed_left, seed_right
    previous: set[tuple[int, int]] | None = None
    sizes: list[int] = []
    converged = False
    links = Links(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))
    iterations = 0
    for _ in range(max_iter + 1):  # the seed-only fit, then up to max_iter refits
        iterations += 1
        links = map_and_link(
            procrustes_map, xn, yn, fit_l, fit_r, seed_left, seed_right, csls_k=csls_k, truncate_rank=True
        )
        current = set(zip(links.left_index.tolist(), links.right_index.tolist(), strict=True))
        sizes.append(len(current))
        if current == previous:
            converged = True
            break
        previous = current
        fit_l = np.concatenate([seed_left, links.left_index])
        fit_r = np.concatenate([seed_right, links.right_index])
    log.debug("self-learning: %d fits, converged=%s, dictionary sizes %s", iterations, converged, sizes)
    return Links(
        links.left_index,
        links.right_index,
        links.score,
        info={"iterations": iterations, "converged": converged, "dictionary_sizes": sizes},
    )


#: The seed-only baselines by name, all with signature (X, Y, seed_left, seed_right) -> Links.
BASELINES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], Links]] = {
    "procrustes": procrustes_links,
    "cca": cca_links,
    "least_squares": least_squares_links,
    "mlp": mlp_links,
    "relative": relative_links,
    "self_learning": self_learning_links,
}


def oracle_links(
    method: str,
    x: np.ndarray,
    y: np.ndarray,
    true_left: np.ndarray,
    true_right: np.ndarray,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
) -> Links:
    """A ceiling, not a baseline: a linear map fitted on ALL true pairs, then cosine mutual NN.

    Args:
        method: ``procrustes`` (on the vectors as given), ``procrustes_centred`` (after VecMap's
            normalisation, as self-learning sees them) or ``least_squares`` (ridge with intercept).
        true_left, true_right: row indices of every true pair (the map is fitted on all of them).
        seed_left, seed_right: seed rows, kept out of the matching as in the baselines.

    Raises:
        InputError: unknown method.
    """
    methods = ("procrustes", "procrustes_centred", "least_squares")
    if method not in methods:
        raise InputError(f"oracle method must be one of {list(methods)}, got {method!r}")
    if method == "procrustes_centred":
        x, y = vecmap_normalise(x), vecmap_normalise(y)
    map_fn: MapFn = least_squares_map if method == "least_squares" else procrustes_map
    return map_and_link(map_fn, x, y, true_left, true_right, seed_left, seed_right)
