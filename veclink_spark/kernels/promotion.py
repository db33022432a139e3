"""Promotion: which of a round's proposed pairs become links.

Serves the engine's promotion step (:mod:`veclink_spark.engine`, on the driver): the Otsu threshold of a
``geh`` round's vote scores (:func:`otsu_threshold`), greedy one-to-one matching (:func:`greedy_one_to_one`)
and the refinement's mixture cut of link similarities (:func:`mixture_cut`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np


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


@dataclass(frozen=True)
class MixtureCut:
    """A two-component Gaussian mixture fitted to the similarities of a round's links."""

    #: links with a similarity at or above this are in the upper component (posterior >= ``posterior``)
    threshold: float
    #: Ashman's D of the two components: sqrt(2) |mu1 - mu2| / sqrt(s1^2 + s2^2)
    separation: float
    #: mixing weight of the upper component
    upper_weight: float
    #: whether the cut applies (the components are separated enough, the upper one not a lone outlier)
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
    D >= ``min_separation`` (D > 2 is Ashman's criterion for a clean separation) and the upper
    component holds at least ``min_links`` links (its weight x the links): EM can also fit one
    component to a lone outlier, whose near-zero spread makes D huge (a million-row fit measured D
    61.5 with 1 of 4,361 links above the cut), and that is no cut of a hump. Returns None for
    fewer than ``min_links`` links. scikit-learn's EM, on sorted values rounded to
    ``CUT_DECIMALS``, with a fixed random state: the same input gives the same cut in both engines.
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
    upper = float(gm.weights_[hi]) * len(v)  # the upper component's links (whatever the posterior level)
    return MixtureCut(threshold, d, float(gm.weights_[hi]), d >= min_separation and upper >= min_links)


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
