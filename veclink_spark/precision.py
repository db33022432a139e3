"""Estimated precision of a run's links, without labels (driver side, numpy).

How many of the links are right? A wrong link is almost always a row whose partner is absent (an
object present on one side only) matched to its best remaining candidate; the estimate therefore
measures what an absent partner looks like, by making partners absent on purpose:

1. **Scores.** One orthogonal map is fitted on the run's links (seeds included), and every row is
   scored against every row of the other table by CSLS under that map (the score the refinement links
   with). A row's *match* is its mutual nearest neighbour by CSLS, if it has one.
2. **Knock-outs (the null).** For every linked row, its partner is removed from the other table (one
   row at a time; the row's own CSLS neighbourhood is measured again without it) and the row's match
   is looked for again. Whatever it finds then is, by construction, a wrong link: the score of a link
   made by a row whose partner is absent. This is target-decoy competition with the decoys made from
   the data itself: no shuffled or synthetic vectors, whose scores would not look like one-sided
   near-duplicates. Only a right link's knock-out removes the row's partner: a wrong link's removes
   its best candidate and leaves its second, which scores lower than a row without partner does. So
   the lfdr of step 4 is fitted a second time with each knock-out's score counted by the chance its
   link is right (from the first fit, then from the fit before, to a fixed point), and a link takes
   the larger of the two fits' values (the second rests on few knock-outs where few links are right).
3. **How many rows have no partner.** A knocked-out row finds no match at all with some rate; rows
   with a partner almost always find one. The number of rows without a partner is estimated as the
   number of rows without a match divided by that rate (Storey's estimator of the null share, read at
   "no match").
4. **Local false-discovery rate.** The expected number of wrong matches at a score, (rows without a
   partner) x (the knock-outs' score density), over the number of matches at that score (all rows),
   is fitted as a non-increasing function of the score (isotonic regression): a link's ``lfdr``, the
   chance that a link of its score is wrong. Both sides are knocked out; a link takes the larger of
   the two sides' values (a wrong link is wrong from either end).
5. A link's ``precision_estimate`` is one minus the mean ``lfdr`` of all links at least as confident
   (CSLS at least as high): the precision of the table cut at that link. The run's
   ``estimated_precision`` is the mean over all links, ``estimated_true_links`` the expected count.

Rows linked after a run (a model's new-rows round) are links a vote of maps kept, not every match:
:class:`VoteNull` makes the null count only the knock-outs whose match the same vote keeps.

What it assumes, in words a user can check: (a) a linked row with its partner removed behaves as a row
that never had one (its neighbourhood is as crowded); (b) rows with a partner find a match; (c) the
run's links are, at every score, a fair sample of the mutual matches at that score. (a) fails when the
one-sided rows sit in regions the linked rows do not; (b) fails on pairs that did not take off, where
the estimate then counts the unmatched partnered rows as partnerless, which makes it conservative:
on a stalled run whose linked rows find a match more often with their partner knocked out than the
average row does at all, every row is counted partnerless and the estimate is about 0 however many
links are right (measured: 0.015 for 16 % right, 0.006 for 14 %).

Runs on the rows the run was fitted on (whole tables up to ``scale.fit_rows`` a side): an
``n_left x n_right`` similarity matrix in float32 (8,000 a side: 256 MB).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
from sklearn.isotonic import IsotonicRegression

from .kernels.maps import CSLS_K, csls_score, procrustes_map

log = logging.getLogger(__name__)

#: Folds of the cross-fitting: each link is scored under a map fitted on the other folds' links.
FOLDS = 5

#: Rows whose knock-out takes part in one matrix product (bounds memory to about 8,000 x n_right).
KNOCKOUT_BATCH = 2048

#: Fits of the null whose knock-outs count by the chance their link is right, at most
#: (:func:`_right_null_lfdr`); measured on the trust benchmark's cells, the estimate moves by under
#: 0.005 after the second.
NULL_FITS = 10

#: Those fits stop when no link's lfdr moved by more than this.
NULL_TOLERANCE = 1e-3

#: The final matching's fits at most: the first on the run's links, each next on the links the one
#: before kept (:func:`final_matching`).
FINAL_MATCH_FITS = 4


@dataclass(frozen=True)
class PrecisionEstimate:
    """Per-link and per-run estimates (links in the order given; seeds are not estimated: NaN).

    Attributes:
        lfdr: each link's estimated chance of being wrong, NaN for seeds.
        precision: each link's ``precision_estimate`` (precision of all links at least as confident).
        score: each link's CSLS score under the map fitted on all links.
        estimated_precision: over all non-seed links (None when there are none).
        estimated_true_links: expected number of right non-seed links.
        partnerless_left, partnerless_right: estimated rows with no partner on each side.
        null_match_rate: share of knocked-out rows that still found a match (left, right).
        first_lfdr: each link's lfdr from the first fit alone (every knock-out counted alike, before
            they are counted by the chance their link is right): the final matching cuts by it.
        lower_bound: True when every row of a side was counted without a partner (assumption (b) of
            the module doc failed outright: the rows that found no match outnumber what the knock-outs'
            match rate allows for rows without one). The estimate is then a floor that says about 0
            however many links are right; it cannot tell a stalled run's few right links from none.
    """

    lfdr: np.ndarray
    precision: np.ndarray
    score: np.ndarray
    estimated_precision: float | None
    estimated_true_links: float
    partnerless_left: float
    partnerless_right: float
    null_match_rate: tuple[float, float]
    first_lfdr: np.ndarray
    lower_bound: bool = False

    def summary(self) -> dict[str, object]:
        """The run-level figures, as ``summary.json`` holds them."""
        return {
            "estimated_precision": None
            if self.estimated_precision is None
            else round(self.estimated_precision, 4),
            "estimated_true_links": round(self.estimated_true_links, 1),
            "estimated_partnerless_rows": {
                "left": round(self.partnerless_left, 1),
                "right": round(self.partnerless_right, 1),
            },
            "knockout_match_rate": {
                "left": round(self.null_match_rate[0], 4),
                "right": round(self.null_match_rate[1], 4),
            },
            "estimate_is_lower_bound": self.lower_bound,
        }


@dataclass(frozen=True)
class VoteNull:
    """The links to estimate were kept by a vote of maps (a model's new-rows round,
    :func:`veclink_spark.engine.vote_round`): a pair is a link when at least ``min_votes`` of ``maps``
    (d_left x d_right) make it a CSLS mutual nearest neighbour. The vote drops most of the matches of
    rows without partner, so the links are more often right than the matches of their score; the
    null then counts a knock-out only when the maps' vote keeps its match (:func:`_vote_keeps`), and
    the matches it is compared with are the links' alone.

    ``side``: 0 when the voted links' new rows are left rows, 1 when right rows; only that side's
    rows are knocked out for the links' lfdr (the other side's rows, whose matches no vote chose, would
    hold the links to the error of an unvoted match: on Debian MiniLM-L6 / L3, new rows like the
    fitted ones, 0.851 estimated with that side's lfdr, 0.884 without, 0.919 measured; scratch, before
    the second fit was left out). ``links``: which of the links given were voted
    (the others, a model's links, fit the maps and compete)."""

    maps: np.ndarray
    min_votes: int
    side: int
    links: np.ndarray


def _vote_keeps(
    own: np.ndarray, other: np.ndarray, maps: np.ndarray, rows: np.ndarray, gone: np.ndarray, to: np.ndarray
) -> np.ndarray:
    """How many of ``maps`` (each own -> other) make each knocked-out row ``rows[i]``, its partner
    ``gone[i]`` removed, and the row ``to[i]`` it then matched CSLS mutual nearest neighbours (each
    map scores every row against every row: one similarity matrix a map, exact where the vote's
    round searched cells). The knocked-out row's neighbourhood is measured without its partner, as in
    :func:`_side`."""
    votes = np.zeros(len(rows), dtype=np.int64)
    for w in maps:
        g = ((own @ w) @ other.T).astype(np.float32)
        gt = _transposed(g)
        r_own, r_other = _top_mean(g, CSLS_K), _column_top_mean(gt, CSLS_K)
        for lo in range(0, len(rows), KNOCKOUT_BATCH):
            rs, gs, ts = (
                rows[lo : lo + KNOCKOUT_BATCH],
                gone[lo : lo + KNOCKOUT_BATCH],
                to[lo : lo + KNOCKOUT_BATCH],
            )
            at = np.arange(len(rs))
            gk = g[rs].astype(np.float64)
            gk[at, gs] = -np.inf
            r_k = _top_mean(gk, CSLS_K)
            row_best = (2.0 * gk - r_k[:, None] - r_other[None, :]).argmax(axis=1)
            col = 2.0 * gt[ts].astype(np.float64) - r_own[None, :] - r_other[ts][:, None]
            col[at, rs] = 2.0 * gk[at, ts] - r_k - r_other[ts]
            votes[lo : lo + len(rs)] += (row_best == ts) & (col.argmax(axis=1) == rs)
        del g, gt
    return votes


def _top_mean(g: np.ndarray, k: int) -> np.ndarray:
    k = min(k, g.shape[1])
    return np.partition(g, g.shape[1] - k, axis=1)[:, g.shape[1] - k :].mean(axis=1)


def _column_top_mean(gt: np.ndarray, k: int) -> np.ndarray:
    """:func:`_top_mean` of ``g.T`` given ``gt``, a C-contiguous copy of it: the same numbers bit for
    bit, without partitioning strided lines (numpy copies each column of ``g`` into a buffer first; over
    a region's 8,500 x 8,600 matrix that was a fifth of the estimate's time). The partition of each
    line does not depend on the layout; the top k are laid out column-major before the mean, as the
    partition of the view ``g.T`` leaves them, so that the mean adds them in the same order."""
    k = min(k, gt.shape[1])
    return np.asfortranarray(np.partition(gt, gt.shape[1] - k, axis=1)[:, gt.shape[1] - k :]).mean(axis=1)


def _transposed(a: np.ndarray, tile: int = 128) -> np.ndarray:
    """A C-contiguous copy of ``a.T``, copied in square tiles that stay in cache: numpy's own copy of a
    transposed view walks one side of a region's 8,500 x 8,600 matrix with a stride of a whole row,
    2-3 times slower (measured). The same numbers; only the copy's order differs."""
    out = np.empty((a.shape[1], a.shape[0]), dtype=a.dtype)
    for i in range(0, a.shape[0], tile):
        for j in range(0, a.shape[1], tile):
            out[j : j + tile, i : i + tile] = a[i : i + tile, j : j + tile].T
    return out


def csls_mutual(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSLS mutual nearest neighbours of a (left x right) similarity matrix: (left rows, their
    right rows, their CSLS scores). The final matching and the benchmarks' ceiling oracle match so."""
    r_right = _column_top_mean(_transposed(g), CSLS_K)
    c = csls_score(g, _top_mean(g, CSLS_K)[:, None], r_right[None, :])
    best, back = c.argmax(axis=1), c.argmax(axis=0)
    rows = np.nonzero(back[best] == np.arange(len(best)))[0]
    return rows, best[rows], c[rows, best[rows]]


def _side(
    g: np.ndarray,
    gt: np.ndarray,
    r_own: np.ndarray,
    r_other: np.ndarray,
    rows: np.ndarray,
    partners: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One side's matches and knock-outs.

    ``g`` is the (own x other) similarity matrix, ``gt`` a C-contiguous copy of its transpose. Returns
    (every own row's match score, -inf when it has no mutual nearest neighbour; each knocked-out row's
    match score with its partner removed; the other-side row it then matches, -1 for none)."""
    c = csls_score(g, r_own[:, None], r_other[None, :])
    best = c.argmax(axis=1)
    n_own = g.shape[0]
    # Each other-side row's best and second-best own row, so a knocked-out row's candidate can be
    # checked for mutuality against every other own row without recomputing the column. The columns
    # of c, scored from gt with the same operations in the same order (so the same numbers bit for
    # bit), are partitioned as contiguous lines: numpy's partition of c along axis 0 copies every
    # strided column into a buffer first, and was 43 % of the estimate's time.
    if n_own > 1:
        neg = csls_score(gt, r_own[None, :], r_other[:, None])
        np.negative(neg, out=neg)
        top2 = np.argpartition(neg, 1, axis=1)[:, :2].T
        del neg
    else:
        top2 = np.zeros((2, g.shape[1]), dtype=np.int64)
    first = np.where(c[top2[0], np.arange(g.shape[1])] >= c[top2[1], np.arange(g.shape[1])], top2[0], top2[1])
    second = np.where(first == top2[0], top2[1], top2[0])
    col_best = c[first, np.arange(g.shape[1])]
    col_second = c[second, np.arange(g.shape[1])]
    own = np.arange(n_own)
    match = np.where(first[best] == own, c[own, best], -np.inf)
    knocked = np.full(len(rows), -np.inf)
    again = np.full(len(rows), -1, dtype=np.int64)
    for lo in range(0, len(rows), KNOCKOUT_BATCH):
        rs, ps = rows[lo : lo + KNOCKOUT_BATCH], partners[lo : lo + KNOCKOUT_BATCH]
        gk = g[rs].astype(np.float64)
        gk[np.arange(len(rs)), ps] = -np.inf
        ck = 2.0 * gk - _top_mean(gk, CSLS_K)[:, None] - r_other[None, :]
        bk = ck.argmax(axis=1)
        val = ck[np.arange(len(rs)), bk]
        rival = np.where(first[bk] == rs, col_second[bk], col_best[bk])
        knocked[lo : lo + len(rs)] = np.where(val >= rival, val, -np.inf)
        again[lo : lo + len(rs)] = np.where(val >= rival, bk, -1)
    return match, knocked, again


def _lfdr(
    match: np.ndarray,
    weight: np.ndarray,
    knocked: np.ndarray,
    shape: np.ndarray | None = None,
    kept: np.ndarray | None = None,
    linked: np.ndarray | None = None,
) -> tuple[IsotonicRegression | None, float, float]:
    """The isotonic fit of P(knock-out | score) (see :func:`_predict` for the lfdr it gives); the
    partnerless rows; the knock-out match rate. ``match`` / ``weight``: every row's match score (-inf:
    none) and how much it counts. ``shape``: how much each knock-out's score counts in the null's
    distribution of scores (default: all alike; the rate counts every knock-out alike). None when no
    row has a match (every link is then wrong).

    Links kept by a vote (:class:`VoteNull`): ``kept`` says which knock-outs' matches the vote keeps
    (the others count for nothing: a partnerless row's match the vote drops makes no link) and
    ``linked`` which rows' matches are links (the others are left out of the matches the null is
    compared with; every match still counts towards the rows without partner)."""
    n = float(weight.sum())
    ok = np.isfinite(match) & (weight > 0)
    fw = weight[ok]
    fit_on = ok if linked is None else ok & linked
    found, fwl = match[fit_on], weight[fit_on]
    if len(found) == 0:
        return None, n, 0.0
    hit = np.isfinite(knocked)
    shape = np.ones(len(knocked)) if shape is None else shape
    # One pseudo knock-out that found a match, at the best score of all (Laplace's rule): with few
    # knock-outs (a run of a few dozen links) "none of them found another match" is weak evidence, and
    # the estimate then errs on the side of caution; with thousands it weighs nothing.
    null = np.append(knocked[hit], found.max())
    share = np.append(shape[hit], shape.mean())
    rate = len(null) / (len(knocked) + 2.0)
    unmatched = 1.0 - float(fw.sum()) / n
    partnerless = n * min(1.0, unmatched / max(1.0 - rate, 1e-9))
    x = np.concatenate([null, found])
    y = np.concatenate([np.ones(len(null)), np.zeros(len(found))])
    # weight the knock-outs so that together they stand for every partnerless row's match (those the
    # vote keeps, with a vote; the pseudo knock-out always kept)
    counts = np.ones(len(null)) if kept is None else np.append(kept[hit], 1.0)
    w = np.concatenate([share / share.sum() * partnerless * rate * counts, fwl])
    iso = IsotonicRegression(increasing=False, out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(x, y, sample_weight=w)
    return iso, partnerless, rate


def prefix_precision(score: np.ndarray, lfdr: np.ndarray) -> np.ndarray:
    """Each link's ``precision_estimate``: one minus the mean ``lfdr`` of the links scored at least as
    high (ties in the order given), raised to the best such precision of any longer prefix (a
    q-value): so it never rises as the score falls, and the links at X or more are the longest prefix
    estimated at X. The raise matters only where ``lfdr`` is not monotone in the score (a large run's
    regions' links keep their own). NaN entries (seeds) stay NaN and take no part."""
    out = np.full(len(score), np.nan)
    ok = np.isfinite(lfdr)
    s, lf = np.nan_to_num(score[ok], nan=-np.inf), lfdr[ok]
    order = np.argsort(-s, kind="stable")
    prefix = 1.0 - np.cumsum(lf[order]) / np.arange(1, len(s) + 1)
    prec = np.empty(len(s))
    prec[order] = np.maximum.accumulate(prefix[::-1])[::-1]
    out[ok] = prec
    return out


def _predict(iso: IsotonicRegression | None, score: np.ndarray) -> np.ndarray:
    if iso is None:
        return np.ones(len(score))
    p = iso.predict(np.where(np.isfinite(score), score, iso.X_min_))
    return np.minimum(1.0, p / np.maximum(1.0 - p, 1e-12))


def _combine(lf_left: np.ndarray, lf_right: np.ndarray) -> np.ndarray:
    """A link's lfdr from its two sides' values: the larger (a wrong link is wrong from either end).
    The mean was measured too (scratch, the rounds' links): closer to the measured precision by
    0.012-0.019 on three Debian alpha 0.3 cells, but it put the negative control's Debian GloVe /
    MiniLM-L6 cell at 0.084 (measured 0.003) where the larger says 0.011. Measured again on the
    final links of 16 trust benchmark cells (the alpha 0.15 out-of-domain ones and the negative
    control): the mean lifts the cross-family runs the larger underestimates (Debian MiniLM-L6 / e5
    -0.063 to -0.027, mpnet / e5 -0.059 to -0.016, WordNet mpnet / e5 -0.055 to -0.008), but the
    same-family ones become optimistic (WordNet mpnet / MiniLM-L6 +0.029 to +0.047), the links kept
    at 0.95 on WordNet mpnet / MiniLM-L3 measure 0.917 (0.930 with the larger) and the negative
    control's Debian GloVe / mpnet says 0.064 (measured 0.003). A promise that holds at the cut is
    worth more to a user than a closer mean, so the larger stays."""
    return np.maximum(lf_left, lf_right)


def _right_null_lfdr(
    s: np.ndarray,
    lfdr: np.ndarray,
    knocked_link: np.ndarray,
    left: tuple[np.ndarray, np.ndarray, np.ndarray],
    right: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """The links' lfdr with each knock-out's score counted by the chance its link is right (``1 -
    lfdr``, fitted again from the lfdr so obtained, :data:`NULL_FITS` times at most).

    Why: a knock-out is a draw of the null only when its link is right. A wrong link's knock-out
    removes a row that is not the partner and leaves the row's second choice, which scores lower than
    a row without partner does; where many links are wrong (a low-precision run, or the low end of a
    final matching) the null so drawn is too light at high scores and the lfdr too low (Debian mpnet
    / MiniLM-L6, alpha 0.15: its final links estimated 0.884, measured 0.819). ``left`` / ``right``:
    each side's (match, weight, knocked) arrays, as :func:`estimate_precision` gives them to
    :func:`_lfdr`; ``knocked_link``: each knock-out's link (a position in ``s``)."""
    out = lfdr
    for _ in range(NULL_FITS):
        chance = 1.0 - out[knocked_link]
        if chance.sum() < 1.0:  # not one right link among them: nothing to count the knock-outs by
            break
        iso_l = _lfdr(*left, chance)[0]
        iso_r = _lfdr(*right, chance)[0]
        out, before = _combine(_predict(iso_l, s), _predict(iso_r, s)), out
        if np.max(np.abs(out - before)) < NULL_TOLERANCE:
            break
    return out


def estimate_precision(
    left: np.ndarray,
    right: np.ndarray,
    link_left: np.ndarray,
    link_right: np.ndarray,
    is_seed: np.ndarray,
    core: tuple[np.ndarray, np.ndarray] | None = None,
    vote: VoteNull | None = None,
) -> PrecisionEstimate:
    """Estimate the precision of links between two in-memory tables (see the module doc).

    Args:
        left, right: the run's (centred, unit) vectors, (n_left, d1) and (n_right, d2).
        link_left, link_right: row positions of each link in ``left`` and ``right``.
        is_seed: True for the seeds among the links (they enter the map, not the estimate).
        core: (left, right) masks of the rows whose matches count towards the rows without a partner
            (default: all): the tables are then a region with a margin around it, and a row in the
            margin competes for matches without being counted, as its own neighbours are missing.
        vote: the links marked in it were kept by a vote of maps (:class:`VoteNull`); their lfdr is
            then fitted against a null of the knock-outs the vote keeps. Without it, every link is
            taken for a match as the final matching makes them.

    Returns:
        A :class:`PrecisionEstimate`, per link in the order given.
    """
    link_left, link_right = np.asarray(link_left, np.int64), np.asarray(link_right, np.int64)
    is_seed = np.asarray(is_seed, bool)
    nan = np.full(len(is_seed), np.nan)
    found = ~is_seed
    x = np.asarray(left, np.float64)
    y = np.asarray(right, np.float64)
    if not found.any() or len(left) < 2 or len(right) < 2:
        empty = PrecisionEstimate(
            nan, nan, nan, None, 0.0, float(len(left)), float(len(right)), (0.0, 0.0), nan
        )
        return empty
    # Cross-fitting: each link is scored, and knocked out, under a map fitted without it (the seeds are
    # in every map). A map fitted on its own links scores them too well, most where they are few
    # against the dimension: fitted on 44 chance pairs in 64 dimensions, it called them all right.
    folds = FOLDS if int(found.sum()) >= FOLDS else 1
    fold = np.full(len(is_seed), -1)
    fold[found] = np.arange(int(found.sum())) % folds
    parts = [x[link_left[fold == f]].T @ y[link_right[fold == f]] for f in range(-1, folds)]
    total = sum(parts)
    score = np.full(len(is_seed), np.nan)
    sides: list[list[np.ndarray]] = [[], [], [], [], [], []]  # match, weight, knocked; left then right
    redo: list[list[np.ndarray]] = [[], [], []]  # the vote side's knock-outs: row, partner, match
    link_rows_l = np.zeros(len(x), bool)
    link_rows_r = np.zeros(len(y), bool)
    link_rows_l[link_left[found]] = True
    link_rows_r[link_right[found]] = True
    for f in range(folds):
        held = fold == f
        w = procrustes_map(total - parts[f + 1] if folds > 1 else total)
        g = ((x @ w) @ y.T).astype(np.float32)
        gt = _transposed(g)
        r_left, r_right = _top_mean(g, CSLS_K), _column_top_mean(gt, CSLS_K)
        li, lj = link_left[held], link_right[held]
        for k, (gg, ggt, ro, rt, rows, partners, linked) in enumerate(
            ((g, gt, r_left, r_right, li, lj, link_rows_l), (gt, g, r_right, r_left, lj, li, link_rows_r))
        ):
            match, knocked, again = _side(gg, ggt, ro, rt, rows, partners)
            if vote is not None and k == vote.side:
                for out, v in zip(redo, (rows, partners, again), strict=True):
                    out.append(v)
            # rows scored under a map that did not see them: the held-out links' rows (weight 1) and
            # the rows of no link (each fold's map: weight 1 / folds)
            weight = np.where(linked, 0.0, 1.0 / folds)
            weight[rows] = 1.0
            if core is not None:
                weight = weight * core[k]
            sides[3 * k].append(match)
            sides[3 * k + 1].append(weight)
            sides[3 * k + 2].append(knocked)
        score[held] = csls_score(np.einsum("ij,ij->i", (x[li] @ w), y[lj]), r_left[li], r_right[lj])
        del g, gt
    s = score[found]
    match_l, weight_l, knocked_l = (np.concatenate(v) for v in sides[:3])
    match_r, weight_r, knocked_r = (np.concatenate(v) for v in sides[3:])
    iso_l, none_l, rate_l = _lfdr(match_l, weight_l, knocked_l)
    iso_r, none_r, rate_r = _lfdr(match_r, weight_r, knocked_r)
    if vote is None:
        first = _combine(_predict(iso_l, s), _predict(iso_r, s))
        # each knock-out's link, as a position in s (the knock-outs are in fold order)
        knocked_link = np.argsort(fold[found], kind="stable")
        lf = np.maximum(
            first,
            _right_null_lfdr(
                s, first, knocked_link, (match_l, weight_l, knocked_l), (match_r, weight_r, knocked_r)
            ),
        )
    else:
        # Only the new rows' side is fitted, and once: the second fit would count each knock-out by
        # its link's chance of being right, read from the lfdr of a voted link, where most knock-outs
        # are of links no vote chose (a model's). Measured (python benchmarks/new_rows.py): it lowered
        # estimates already low by up to 0.20 (Debian MiniLM-L6 / e5 at alpha 0.15, a batch a tenth
        # with partner: 0.307 for 0.523; without it 0.507).
        kept, linked = _voted(x, y, vote, redo, link_left, link_right, folds)
        v_match, v_weight, v_knocked = (
            (match_l, weight_l, knocked_l) if vote.side == 0 else (match_r, weight_r, knocked_r)
        )
        first = lf = _predict(_lfdr(v_match, v_weight, v_knocked, None, kept, linked)[0], s)
    lfdr_all, first_all = nan.copy(), nan.copy()
    lfdr_all[found], first_all[found] = lf, first
    est = PrecisionEstimate(
        lfdr=lfdr_all,
        precision=prefix_precision(score, lfdr_all),
        score=score,
        estimated_precision=float(1.0 - lf.mean()),
        estimated_true_links=float((1.0 - lf).sum()),
        partnerless_left=none_l,
        partnerless_right=none_r,
        null_match_rate=(rate_l, rate_r),
        first_lfdr=first_all,
        # _lfdr caps the rows without a partner at the rows counted
        lower_bound=bool(none_l >= float(weight_l.sum()) or none_r >= float(weight_r.sum())),
    )
    log.info(
        "precision: estimated %.3f over %d links (%.0f right); partnerless rows %.0f left, %.0f right",
        est.estimated_precision,
        len(s),
        est.estimated_true_links,
        none_l,
        none_r,
    )
    return est


def _voted(
    x: np.ndarray,
    y: np.ndarray,
    vote: VoteNull,
    redo: list[list[np.ndarray]],
    link_left: np.ndarray,
    link_right: np.ndarray,
    folds: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The vote side's ``kept`` and ``linked`` of :func:`_lfdr`: which knock-outs (``redo``: their
    rows, partners and new matches, in fold order) the maps' vote keeps, and the rows of the voted
    links (in each fold's copy of the rows)."""
    rows, gone, to = (np.concatenate(v) for v in redo)
    hit = to >= 0
    own, other = (x, y) if vote.side == 0 else (y, x)
    maps = vote.maps if vote.side == 0 else np.transpose(vote.maps, (0, 2, 1))
    votes = np.zeros(len(rows), dtype=np.int64)
    if hit.any():
        votes[hit] = _vote_keeps(own, other, maps, rows[hit], gone[hit], to[hit])
    kept = (votes >= vote.min_votes).astype(float)
    voted_rows = np.zeros(len(own), bool)
    voted_rows[(link_left if vote.side == 0 else link_right)[np.asarray(vote.links, bool)]] = True
    log.info(
        "precision: the maps' vote keeps %d of %d knock-outs' matches (%d of %d maps needed)",
        int(kept.sum()),
        int(hit.sum()),
        vote.min_votes,
        len(vote.maps),
    )
    return kept, np.tile(voted_rows, folds)


@dataclass(frozen=True)
class FinalMatching:
    """The run's final links over the fitted rows (:func:`final_matching`): positions in the tables,
    seeds first, then the kept matches best first, with their estimate (seeds: NaN)."""

    left: np.ndarray
    right: np.ndarray
    is_seed: np.ndarray
    estimate: PrecisionEstimate
    matches: int
    estimated_f1: float | None
    fits: int = 1


def final_matching(
    left: np.ndarray,
    right: np.ndarray,
    link_left: np.ndarray,
    link_right: np.ndarray,
    is_seed: np.ndarray,
) -> FinalMatching:
    """Match the tables once more under an orthogonal map fitted on a run's links, refitted on its own
    kept links until they stop changing (at most :data:`FINAL_MATCH_FITS` fits), and cut where the
    estimated F1 peaks.

    Every row's CSLS mutual nearest neighbour under the map is a candidate (seed rows keep their seed);
    :func:`estimate_precision` gives each its ``lfdr`` (the cut reads the first fit's, ``first_lfdr``;
    the kept links carry the full estimate); best first, the expected right links over the prefix are
    the sum of ``1 - lfdr``, the expected true pairs the rows that have a partner (the mean of
    the two sides' estimates, seeds excluded); the prefix with the largest estimated F1 is kept. This
    recovers the pairs a run's cut and polish leave out where its map already finds them (the demo: 253
    links at P 0.917, R 0.552 before, 419 at P 0.959, R 0.957 after; docs/method.md, "Final matching").

    The next map is fitted on the kept links (seeds included), as the refinement of MUSE and VecMap
    refits a map on the dictionary it induced; fitted on every mutual pair instead, the partnerless
    rows' matches (most rows at alpha 0.15) pulled the map off: WordNet MiniLM-L6 / L3 alpha 0.15
    lost 0.043 of F1. Measured in docs/method.md, "Final matching".
    """
    fm = _match_once(left, right, link_left, link_right, is_seed)
    fits = 1
    while fits < FINAL_MATCH_FITS and fm.estimated_f1 is not None:
        nxt = _match_once(left, right, fm.left, fm.right, fm.is_seed)
        if nxt.estimated_f1 is None:  # nothing matched under the new map: keep the last matching
            break
        fits += 1
        same = _pairs(nxt) == _pairs(fm)
        fm = nxt
        if same:
            break
    return replace(fm, fits=fits)


def _pairs(fm: FinalMatching) -> set[tuple[int, int]]:
    return set(zip(fm.left.tolist(), fm.right.tolist(), strict=True))


def _match_once(
    left: np.ndarray,
    right: np.ndarray,
    link_left: np.ndarray,
    link_right: np.ndarray,
    is_seed: np.ndarray,
) -> FinalMatching:
    """One fit of :func:`final_matching`: the map on the given links, the mutual pairs, the cut."""
    x = np.asarray(left, np.float64)
    y = np.asarray(right, np.float64)
    link_left, link_right = np.asarray(link_left, np.int64), np.asarray(link_right, np.int64)
    seeds = np.asarray(is_seed, bool)
    w = procrustes_map(x[link_left].T @ y[link_right])
    rows, cols, _ = csls_mutual(((x @ w) @ y.T).astype(np.float32))
    sl, sr = link_left[seeds], link_right[seeds]
    free = ~np.isin(rows, sl) & ~np.isin(cols, sr)
    rows, cols = rows[free], cols[free]
    al, ar = np.concatenate([sl, rows]), np.concatenate([sr, cols])
    aseed = np.concatenate([np.ones(len(sl), bool), np.zeros(len(rows), bool)])
    est = estimate_precision(x, y, al, ar, aseed)
    if not len(rows) or est.estimated_precision is None:
        return FinalMatching(sl, sr, np.ones(len(sl), bool), take(est, np.arange(len(sl))), len(rows), None)
    # cut by the first fit's lfdr: counted by the chance their link is right, the knock-outs moved the
    # cut on 8 of 22 trust benchmark cells and cost WordNet e5 / MiniLM-L3 and mpnet / e5 0.011-0.012
    # of F1 (their precision up 0.023-0.037, recall down 0.035-0.054)
    shared = expected_true_pairs(est, len(x), len(y), len(sl))
    order, k, f1 = f1_peak(est.score[~aseed], est.first_lfdr[~aseed], shared)
    keep = np.concatenate([np.arange(len(sl)), len(sl) + order[:k]])
    log.info(
        "final matching: %d mutual nearest pairs under the links' map, %d kept (estimated F1 %.3f)",
        len(rows),
        k,
        f1,
    )
    return FinalMatching(al[keep], ar[keep], aseed[keep], take(est, keep), len(rows), f1)


def expected_true_pairs(est: PrecisionEstimate, n_left: int, n_right: int, n_seeds: int) -> float:
    """The true pairs a run's links can find: the rows that have a partner (the mean of the two sides'
    estimates), the seeds' pairs excluded; at least 1."""
    return max(1.0, (n_left - est.partnerless_left + n_right - est.partnerless_right) / 2.0 - n_seeds)


def f1_peak(score: np.ndarray, lfdr: np.ndarray, shared: float) -> tuple[np.ndarray, int, float]:
    """Links ranked best ``score`` first (ties in the order given) and the length of the prefix with the
    largest estimated F1, with that F1: a prefix's expected right links are the sum of its ``1 - lfdr``,
    against ``shared`` true pairs (:func:`expected_true_pairs`). Returns (order, k, F1)."""
    order = np.argsort(-score, kind="stable")
    expected_right = np.cumsum(1.0 - lfdr[order])
    f1 = 2.0 * expected_right / (np.arange(1, len(order) + 1) + shared)
    k = int(np.argmax(f1)) + 1
    return order, k, float(f1[k - 1])


def take(est: PrecisionEstimate, at: np.ndarray) -> PrecisionEstimate:
    """The estimate of a prefix of the links (best first): the run-level figures over the kept ones."""
    lf = est.lfdr[at]
    known = lf[np.isfinite(lf)]
    return PrecisionEstimate(
        lfdr=lf,
        precision=est.precision[at],
        score=est.score[at],
        estimated_precision=float(1.0 - known.mean()) if len(known) else None,
        estimated_true_links=float((1.0 - known).sum()),
        partnerless_left=est.partnerless_left,
        partnerless_right=est.partnerless_right,
        null_match_rate=est.null_match_rate,
        first_lfdr=est.first_lfdr[at],
        lower_bound=est.lower_bound,
    )
