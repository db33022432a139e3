"""Numeric kernels of the method: plain numpy (and scikit-learn) functions on arrays.

The same functions run in three places: inside Spark executors (called by the Arrow/pandas UDFs of
:mod:`veclink_spark.stages`), on the driver (view sampling, Otsu threshold, promotion, map fitting),
and in the in-process backend (:mod:`veclink_spark.backends.in_process`). Sharing them is what makes the Spark
job and the reference give the same links for the same input, config and seed.

Everything here is deterministic given its inputs (random choices take a ``numpy.random.Generator``).
Similarities are rounded to ``SIM_DECIMALS`` decimals so that BLAS summation-order noise (which differs
with batch shapes between executors and the reference) cannot flip an argmax; ties are then broken by
the smaller id, the same way on both sides.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

#: Decimals kept of every similarity before comparisons (see module doc).
SIM_DECIMALS = 9


def _rounded(x: np.ndarray, decimals: int) -> np.ndarray:
    """``np.round(x, decimals)`` computed in place on a fresh float64 array (bit-identical: numpy rounds
    by the same multiply, rint, divide; without the two temporaries of a 60M-entry block matrix)."""
    scale = 10.0**decimals
    np.multiply(x, scale, out=x)
    np.rint(x, out=x)
    np.divide(x, scale, out=x)
    return x


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


def median_anchor_distance(anchors: np.ndarray) -> float:
    """Median distance between distinct anchors of one view in one space (the kernel's scale)."""
    k = len(anchors)
    if k < 2:
        return 1.0
    d = pairwise_distances(anchors, anchors)[np.triu_indices(k, 1)]
    med = float(np.median(d))
    return med if med > 0 else 1.0


def kernel_values(x: np.ndarray, anchors: np.ndarray, bandwidth: float) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian distance kernel exp(-d^2 / 2h^2) of unit vectors ``x`` to one view's ``anchors``,
    which down-weights far anchors: (values (n, s), distances)."""
    d = pairwise_distances(x, anchors)
    return np.exp(-(d * d) / (2.0 * bandwidth * bandwidth)), d


def anchor_signatures(
    x: np.ndarray,
    anchors: np.ndarray,
    bandwidth: float,
    centering: str,
    column_mean: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Kernel-weighted anchor-distance signatures of unit vectors ``x`` in one view.

    r(u) = (k(d(u, a_1)), ..., k(d(u, a_s))) (:func:`kernel_values`), then centred and L2-normalised
    (which removes the unknown scale between the two encoders). ``centering``:

    - ``anchor`` (algorithm.md): subtract from each coordinate its mean over the view's vectors of this
      side (``column_mean``, from :func:`view_kernel_sums` over the whole table). On the sphere every
      vector's distance to an anchor sits near the same value; that shared per-anchor offset made all
      signatures alike, and removing it is what lets the published loop take off;
    - ``row``: subtract each row's own mean (removes a vector's offset, keeps the anchors').

    Returns:
        (signatures (n, s) float64, distances (n, s) float64)
    """
    s, d = kernel_values(x, anchors, bandwidth)
    if centering == "anchor":
        if column_mean is None:
            raise ValueError("centering 'anchor' needs the view's column means")
        s = s - np.asarray(column_mean, dtype=np.float64)[None, :]
    else:
        s = s - s.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(s, axis=1, keepdims=True)
    return s / np.where(norms > 0, norms, 1.0), d


def view_kernel_sums(
    x: np.ndarray, anchor_vectors: np.ndarray, views: list[View], side: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per view: (rows, sum of their kernel values per anchor), for ``anchor`` centring.

    Partial sums over a batch: executors return one per Arrow batch and the driver adds them up
    (:func:`view_column_means`); the reference calls it on the whole table. Returns (counts (m,),
    sums (m, widest view)) zero-padded.
    """
    width = max((len(v.anchors) for v in views), default=0)
    counts = np.zeros(len(views), dtype=np.int64)
    sums = np.zeros((len(views), width))
    for vi, v in enumerate(views):
        h = v.bandwidth_left if side == "left" else v.bandwidth_right
        s, _ = kernel_values(x, anchor_vectors[v.anchors], h)
        counts[vi] = len(s)
        sums[vi, : s.shape[1]] = s.sum(axis=0)
    return counts, sums


def view_column_means(counts: np.ndarray, sums: np.ndarray, views: list[View]) -> list[np.ndarray]:
    """Each view's per-anchor mean kernel value (rounded to :data:`MEAN_DECIMALS`, so that the engines'
    different summation orders give equal means)."""
    return [
        np.round(sums[vi, : len(v.anchors)] / max(int(counts[vi]), 1), MEAN_DECIMALS)
        for vi, v in enumerate(views)
    ]


def nearest_keys(dist: np.ndarray, probes: int) -> np.ndarray:
    """Indices (within the view) of each row's ``probes`` nearest anchors: its blocking keys.

    Ties are broken by the smaller anchor index (stable sort), identically everywhere.
    """
    p = min(probes, dist.shape[1])
    if p >= 8:
        return np.argsort(dist, axis=1, kind="stable")[:, :p]
    # The first p of a stable argsort, one argmin (the first minimum: the smaller index on ties) at a
    # time: a full sort of every row costs far more when there are thousands of anchors (a full-table
    # round at a million rows a side has 1,000 cells, of which each row keeps 3).
    d = np.array(dist, dtype=np.float64)
    rows = np.arange(len(d))
    out = np.empty((len(d), p), dtype=np.int64)
    for j in range(p):
        out[:, j] = d.argmin(axis=1)
        d[rows, out[:, j]] = np.inf
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
        g = _rounded(sl[start : start + step] @ sr.T, SIM_DECIMALS)
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


def otsu_threshold(values: np.ndarray, counts: np.ndarray) -> float:
    """Otsu's threshold on a histogram of distinct ``values`` with ``counts``.

    Returns the smallest value of the upper class that maximises the between-class variance, so
    that ``score >= threshold`` selects the upper class. With one distinct value, returns it.
    Written by hand because the score histogram is tiny and already aggregated (skimage's version
    wants raw samples and brings a heavy dependency).
    """
    order = np.argsort(values)
    v = np.asarray(values, dtype=np.float64)[order]
    c = np.asarray(counts, dtype=np.float64)[order]
    if len(v) <= 1:
        return float(v[0]) if len(v) else math.inf
    w0 = np.cumsum(c)[:-1]
    w1 = c.sum() - w0
    s0 = np.cumsum(c * v)[:-1]
    m0 = s0 / w0
    m1 = ((c * v).sum() - s0) / w1
    between = w0 * w1 * (m0 - m1) ** 2
    return float(v[int(np.argmax(between)) + 1])


#: Decimals of the link similarities the mixture cut is fitted on (the backends' float32 CSLS scores
#: agree to about 1e-7; sorted and rounded, both fit the same mixture).
CUT_DECIMALS = 4
# Decimals of the take-off objective (the mean CSLS r_k of the rows, both sides): its summation order
# differs between the backends, so it is rounded before the engine compares it.
OBJECTIVE_DECIMALS = 6


@dataclass(frozen=True)
class MixtureCut:
    """A two-component Gaussian mixture fitted to the similarities of a round's links."""

    #: links with a similarity at or above this are in the upper component (posterior >= ``posterior``)
    threshold: float
    #: Ashman's D of the two components: sqrt(2) |mu1 - mu2| / sqrt(s1^2 + s2^2)
    separation: float
    #: mixing weight of the upper component
    upper_weight: float
    #: whether the cut applies (the components are separated enough)
    applies: bool


def mixture_cut(
    sims: np.ndarray, *, min_separation: float, posterior: float = 0.5, min_links: int = 50
) -> MixtureCut | None:
    """Split link similarities into a 'right' (upper) and a 'wrong' (lower) Gaussian component.

    Where most objects of a table have no partner, their best matches still become mutual nearest
    neighbours, with a lower similarity than true links: the similarities of the links are then a
    two-humped mixture (measured: Ashman's D 3.1-3.5 on the easy pairs at alpha 0.15), and the upper
    hump's posterior is a cut with no label needed. Where nearly all links are right, a mixture still
    fits but splits the one hump in two (D ~ 1.5 at alpha 0.9): the cut ``applies`` only when
    D >= ``min_separation`` (D > 2 is Ashman's criterion for a clean separation). Returns None for
    fewer than ``min_links`` links. scikit-learn's EM, on sorted values rounded to ``CUT_DECIMALS``,
    with a fixed random state: the same input gives the same cut in both engines.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    v = np.sort(np.round(np.asarray(sims, dtype=np.float64), CUT_DECIMALS))
    if len(v) < min_links or v[-1] - v[0] <= 0:
        return None

    gm = GaussianMixture(n_components=2, covariance_type="full", random_state=0, max_iter=500)
    with warnings.catch_warnings():
        # A flat, one-hump set of scores can stop EM early: that fit is still what the separation
        # check needs (it then finds no clean split).
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(v[:, None])
    mu = gm.means_.ravel()
    sd = np.sqrt(gm.covariances_.ravel())
    hi = int(np.argmax(mu))
    d = float(math.sqrt(2.0) * abs(mu[1] - mu[0]) / math.sqrt(float((sd**2).sum())))
    post = gm.predict_proba(v[:, None])[:, hi]
    # Posterior of the upper component rises with the value between the two means; the threshold is
    # the smallest value at or above the lower mean whose posterior reaches the level.
    above = (post >= posterior) & (v >= mu.min())
    threshold = float(v[np.argmax(above)]) if above.any() else math.inf
    return MixtureCut(threshold, d, float(gm.weights_[hi]), d >= min_separation)


def greedy_one_to_one(
    left: np.ndarray,
    right: np.ndarray,
    score: np.ndarray,
    tiebreak: np.ndarray,
    used_left: set,
    used_right: set,
) -> np.ndarray:
    """Indices of pairs kept by greedy one-to-one matching, best score first.

    Order: score desc, then ``tiebreak`` desc, then left id, then right id (all deterministic). A pair
    is skipped when its left or right id is already used (by an anchor or a better pair).
    """
    order = np.lexsort(
        (right, left, -np.asarray(tiebreak, dtype=np.float64), -np.asarray(score, dtype=np.float64))
    )
    ul, ur = set(used_left), set(used_right)
    keep = []
    for i in order:
        a, b = left[i], right[i]
        if a in ul or b in ur:
            continue
        ul.add(a)
        ur.add(b)
        keep.append(i)
    return np.asarray(keep, dtype=np.int64)


@dataclass(frozen=True)
class View:
    """One view: indices into the current anchor list, and the kernel bandwidth on each side."""

    anchors: np.ndarray
    bandwidth_left: float
    bandwidth_right: float


def views_schedule(
    n_anchors: int,
    n_seeds: int,
    base_views: int,
    growth: float,
    view_fraction: float,
    min_view_size: int,
    max_view_size: int,
) -> tuple[int, int]:
    """(m_t, s_t): number and size of views while anchors are few.

    m_t = ceil(m0 * (1 + c log g_t)), s_t = ceil(rho0 |L| / sf_t) with g_t = |L| / |L_0| (the anchor
    set's growth) and sf_t = 1 + c log g_t: more and smaller views as the anchor set grows, to stay
    local. This is our reading of the paper's schedule (its g_t and sf_t are not published).
    """
    g = max(n_anchors / max(n_seeds, 1), 1.0)
    factor = 1.0 + growth * math.log(g)
    m = int(math.ceil(base_views * factor))
    s = int(math.ceil(view_fraction * n_anchors / factor))
    s = max(min_view_size, min(s, max_view_size, n_anchors))
    return m, min(s, n_anchors)


def sample_views(
    anchors_left: np.ndarray,
    anchors_right: np.ndarray,
    n_seeds: int,
    d_max: int,
    *,
    base_views: int,
    growth: float,
    view_fraction: float,
    min_view_size: int,
    max_view_size: int,
    kmeans_overlap: int,
    bandwidth: float,
    rng: np.random.Generator,
) -> tuple[list[View], str]:
    """The views of one round, on the driver. Returns (views, branch name).

    Branches: ``kmeans`` once |L| > d_max and the partition has more clusters than the overlap rho
    (else every anchor would join every cluster and all views would be identical: guarded), else
    ``random``: uniform random subsets of size s_t (farthest-point subsets of 15-30 anchors are nearly
    the same subset every time, so their votes are correlated: docs/method.md).
    """
    k = len(anchors_left)
    views: list[View] = []
    branch = "random"
    n_clusters = int(math.ceil(k / d_max))
    if k > d_max and n_clusters > kmeans_overlap:
        from sklearn.cluster import KMeans

        branch = "kmeans"
        seed = int(rng.integers(0, 2**31 - 1))
        km = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed).fit(anchors_left)
        dist = pairwise_distances(anchors_left, normalise_rows(km.cluster_centers_))
        member = np.argsort(dist, axis=1, kind="stable")[:, :kmeans_overlap]
        groups = [np.nonzero((member == c).any(axis=1))[0] for c in range(n_clusters)]
    else:
        m, s = views_schedule(k, n_seeds, base_views, growth, view_fraction, min_view_size, max_view_size)
        groups = [np.sort(rng.choice(k, size=s, replace=False)) for _ in range(m)]
    for g in groups:
        if len(g) < 2:
            continue
        views.append(
            View(
                anchors=g.astype(np.int64),
                bandwidth_left=bandwidth * median_anchor_distance(anchors_left[g]),
                bandwidth_right=bandwidth * median_anchor_distance(anchors_right[g]),
            )
        )
    return views, branch


#: Decimals the cross-covariances are rounded to before the Procrustes SVD (summation-order noise
#: between backends must not change the maps).
CROSS_DECIMALS = 10


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


@dataclass
class SignatureRows:
    """Signature rows of a batch of vectors for every view: one row per (vector, view, key)."""

    view: np.ndarray  # int32, view index within the round
    key: np.ndarray  # int32, blocking key (anchor index, or cell index)
    row: np.ndarray  # int64, row of the batch the signature belongs to
    dist: np.ndarray  # float64, distance to the key's anchor / cell (block caps keep the closest)
    sig: np.ndarray  # (rows, width) float64 signatures, zero-padded to the widest view (no effect on
    # inner products)


def geh_signature_rows(
    x: np.ndarray,
    anchor_vectors: np.ndarray,
    views: list[View],
    side: str,
    *,
    probes: int,
    centering: str,
    column_means: list[np.ndarray] | None = None,
) -> SignatureRows:
    """Signatures and blocking keys of a batch of unit vectors for every view of a ``geh`` round.

    Runs inside executors (via the signature stage's Arrow UDF) and in the reference. Keys are the
    anchor-list indices of the ``probes`` nearest view anchors. ``column_means``: one per view, for
    ``centering`` ``anchor`` (:func:`view_column_means`).
    """
    views_out, keys_out, rows_out, dist_out, sigs = [], [], [], [], []
    n = len(x)
    for vi, v in enumerate(views):
        h = v.bandwidth_left if side == "left" else v.bandwidth_right
        mean = None if column_means is None else column_means[vi]
        s, d = anchor_signatures(x, anchor_vectors[v.anchors], h, centering, mean)
        near = nearest_keys(d, probes)
        rows = np.arange(n)
        for p in range(near.shape[1]):
            k = near[rows, p]
            views_out.append(np.full(len(rows), vi, dtype=np.int32))
            keys_out.append(v.anchors[k].astype(np.int32))
            rows_out.append(rows.astype(np.int64))
            dist_out.append(d[rows, k])
            sigs.append(s[rows])
    return _pack(views_out, keys_out, rows_out, dist_out, sigs)


def refine_signature_rows(
    x: np.ndarray,
    maps: np.ndarray | None,
    centroids: np.ndarray,
    *,
    probes: int,
) -> SignatureRows:
    """Mapped vectors and cell keys of a batch for every bagged map of a ``refine`` round.

    Left vectors are mapped by each bag's map W_b and re-normalised (similarities are cosines); right
    vectors (``maps`` None) are used as they are, once per bag. Keys are the ``probes`` nearest
    cells (k-means centroids in the right space).
    """
    n_bags = len(maps) if maps is not None else 0
    return _refine_rows(x, maps, centroids, probes, n_bags)


def refine_right_rows(x: np.ndarray, n_bags: int, centroids: np.ndarray, *, probes: int) -> SignatureRows:
    """Right side of a refine round: the unmapped vectors, keyed by their nearest cells, for every bag."""
    return _refine_rows(x, None, centroids, probes, n_bags)


def _refine_rows(
    x: np.ndarray,
    maps: np.ndarray | None,
    centroids: np.ndarray,
    probes: int,
    n_bags: int,
) -> SignatureRows:
    views_out, keys_out, rows_out, dist_out, sigs = [], [], [], [], []
    n = len(x)
    base = normalise_rows(x)
    for b in range(n_bags):
        y = base if maps is None else normalise_rows(base @ maps[b])
        d = pairwise_distances(y, centroids)
        near = nearest_keys(d, probes)
        rows = np.arange(n)
        y32 = y.astype(np.float32)
        for p in range(near.shape[1]):
            k = near[:, p]
            views_out.append(np.full(n, b, dtype=np.int32))
            keys_out.append(k.astype(np.int32))
            rows_out.append(rows.astype(np.int64))
            dist_out.append(d[rows, k])
            # float32: half the memory and the shuffle of a round's rows; products are taken in float64
            # from these same numbers by both engines (csls_block), so they agree bit for bit.
            sigs.append(y32)
    return _pack(views_out, keys_out, rows_out, dist_out, sigs)


def _pack(views_out: list, keys_out: list, rows_out: list, dist_out: list, sigs: list) -> SignatureRows:
    if not views_out:
        e = np.array([], dtype=np.int64)
        return SignatureRows(
            e.astype(np.int32), e.astype(np.int32), e, e.astype(np.float64), np.zeros((0, 1))
        )
    width = max(s.shape[1] for s in sigs)
    padded = [s if s.shape[1] == width else np.pad(s, ((0, 0), (0, width - s.shape[1]))) for s in sigs]
    return SignatureRows(
        np.concatenate(views_out),
        np.concatenate(keys_out),
        np.concatenate(rows_out),
        np.concatenate(dist_out),
        np.concatenate(padded),
    )


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
    g = _rounded(sl @ sr.T, SIM_DECIMALS)
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
    crowded in), not the r of the block where the pair met. Measured on the 117k WordNet pair's
    full-table rounds (MiniLM-L6 / L3, 76,478 rows a side, 77 cells, 3 probes each side; scratch
    numpy from the run's own map): the mixture cut then keeps P 0.965, R 0.787 (F1 0.867) where the
    meeting block's r keeps P 0.960, R 0.722 (0.824); the mean of the merged top-k over the blocks
    did worse (0.822). Far from its own blocks a one-sided row's best match scores high against a
    sparse block; its most crowded block says how high its best matches score anyway.
    """
    c = 2.0 * np.asarray(cos, dtype=np.float64)
    c -= r_left
    c -= r_right
    return _rounded(c, SIM_DECIMALS)


def id_hashes(ids: np.ndarray) -> np.ndarray:
    """A uint64 per id: integer ids as themselves, other ids (strings) by CRC32 of their UTF-8 text."""
    import zlib

    a = np.asarray(ids)
    if a.dtype.kind in "iu":
        return a.astype(np.uint64)
    return np.array([zlib.crc32(str(v).encode()) for v in a.tolist()], dtype=np.uint64)


def _splitmix(x: np.ndarray) -> np.ndarray:
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
        h = _splitmix(id_hashes(ids) + np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt))
    return (h >> np.uint64(1)).astype(np.int64)


def hash_sample(ids: np.ndarray, size: int, salt: int = 0) -> np.ndarray:
    """Row indices of the ``size`` ids with the smallest :func:`sample_keys` (ties by id), in that order."""
    return np.lexsort((np.asarray(ids), sample_keys(ids, salt)))[: int(size)]


def descriptor_sample_size(init_sample: int, n_left: int, n_right: int) -> int:
    """Rows of each table's descriptor sample: one size for both, so that the two tables' descriptors
    read the same ranks (a table smaller than ``init_sample`` would otherwise give descriptors of
    another length, or the same ranks of a shorter list: incomparable)."""
    return max(2, min(int(init_sample), int(n_left), int(n_right)))


def distribution_descriptors(
    x: np.ndarray, ids: np.ndarray, sample: np.ndarray, sample_ids: np.ndarray, quantiles: int
) -> np.ndarray:
    """Each row's sorted similarities to a sample of its own table: an isometry-invariant descriptor.

    VecMap's unsupervised initialisation (Artetxe et al., ACL 2018): a rotation of a space leaves the
    distribution of a point's similarities to the other points unchanged, so two encoders that keep
    local geometry give one object similar descriptors, with no seed needed. The similarities to the
    sample (a row's own similarity excluded) are sorted, read at ``quantiles`` ranks on a geometric grid
    (dense among the nearest neighbours, where encoders agree most), centred and L2-normalised.
    Hand-written: no library computes it; it is a sort and a gather.
    """
    x = np.asarray(x, dtype=np.float64)
    s = _rounded(x @ np.asarray(sample, dtype=np.float64).T, SIM_DECIMALS)
    s[np.asarray(ids)[:, None] == np.asarray(sample_ids)[None, :]] = -np.inf
    s = -np.sort(-s, axis=1)
    m = s.shape[1] - 1  # the last rank may be a row's own (excluded) similarity
    if m < 1:
        raise ValueError("the descriptor sample needs at least two rows")
    ranks = np.unique(np.round(np.geomspace(1, m, int(quantiles))).astype(np.int64)) - 1
    d = s[:, ranks]
    d = d - d.mean(axis=1, keepdims=True)
    return normalise_rows(d)


def cell_centroids(vectors: np.ndarray, n_cells: int, seed: int, max_iter: int = 300) -> np.ndarray:
    """Blocking cells of a mapped nearest-neighbour search: k-means centroids (unit length) of vectors
    (at most ``max_iter`` Lloyd iterations; scikit-learn's default 300)."""
    if n_cells <= 1:
        return normalise_rows(np.asarray(vectors, dtype=np.float64).mean(axis=0, keepdims=True))
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=n_cells, n_init=1, max_iter=int(max_iter), random_state=int(seed)).fit(vectors)
    return normalise_rows(km.cluster_centers_)


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
    x = _splitmix(x)
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


def nearest_seed(x: np.ndarray, seed_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each unit row's nearest seed (index, first on ties) and its similarity (rounded to
    :data:`SIM_DECIMALS`, so both engines rank rows alike)."""
    sims = _rounded(
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
