"""Signatures: what makes a row comparable across the two spaces, and the keys that block it.

Serves the rounds' signature stage (:mod:`veclink_spark.stages.signatures` on Spark, the in-process
backend in memory): a ``geh`` round's views (:func:`sample_views`, on the driver) and each row's
kernel-weighted anchor signatures with their blocking keys (:func:`geh_signature_rows`); a ``refine``
round's mapped rows keyed by their nearest cells (:func:`refine_signature_rows`); and the take-off's
isometry-invariant start, each row's similarity-distribution descriptor
(:func:`distribution_descriptors`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .centre import MEAN_DECIMALS, SIM_DECIMALS, normalise_rows, pairwise_distances, rounded


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
    s = rounded(x @ np.asarray(sample, dtype=np.float64).T, SIM_DECIMALS)
    s[np.asarray(ids)[:, None] == np.asarray(sample_ids)[None, :]] = -np.inf
    s = -np.sort(-s, axis=1)
    m = s.shape[1] - 1  # the last rank may be a row's own (excluded) similarity
    if m < 1:
        raise ValueError("the descriptor sample needs at least two rows")
    ranks = np.unique(np.round(np.geomspace(1, m, int(quantiles))).astype(np.int64)) - 1
    d = s[:, ranks]
    d = d - d.mean(axis=1, keepdims=True)
    return normalise_rows(d)
