"""What a finished run's links are worth, and what to ask its user (driver side).

After the rounds, on the whole tables when they fit in ``scale.fit_rows``, else on regions around
random links (:func:`estimate_basis`), duplicates left out:

1. the links a user rejected (answers to an earlier run's questions) are dropped;
2. **final matching** (whole tables, ``links.final_match``, rounds' links estimated at precision
   :data:`FINAL_MATCH_MIN_PRECISION` or more by an estimate that is no floor, or a user's answers
   mostly confirmed, :data:`FINAL_MATCH_MIN_CONFIRMED`): the tables are matched once more under a
   map fitted on the run's links, refitted on the links it keeps until they settle, and cut where
   the estimated F1 peaks (:func:`veclink_spark.precision.final_matching`);
3. each link gets ``precision_estimate`` (:mod:`veclink_spark.precision`; on regions, the links
   outside them through their scores, :func:`link_precision`); ``links.min_precision`` keeps the
   links at or above it (seeds always);
4. the questions (:mod:`veclink_spark.questions`) are chosen, to be written when :func:`asks` says so.

Used by both the Spark job (``Linker``) and the in-process API (``link_arrays``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from .backends.base import Backend
from .config import LinkConfig
from .duplicates import Duplicates, find_duplicates
from .errors import InputError
from .kernels.samples import hash_sample, neighbourhood_sample
from .precision import (
    PrecisionEstimate,
    VoteNull,
    estimate_precision,
    expected_true_pairs,
    f1_peak,
    final_matching,
    prefix_precision,
    take,
)
from .questions import ASK_BELOW_PRECISION, Answers, choose_questions, drop_rejected

log = logging.getLogger(__name__)

#: A link is trusted (the summary's ``trusted_links``) when its precision_estimate is at least this.
TRUST_PRECISION = 0.9

#: The final matching runs only when the rounds' links are estimated at least this precise, by an
#: estimate that is no floor (``lower_bound`` false: some rows evidently have a partner). A map fitted
#: on a chance matching makes its own pairs mutual nearest neighbours again, and an estimate of pairs
#: that one map produced cannot tell them from a real matching (random 64-d / 48-d tables: the rounds'
#: 29 links estimated at 0.005, the final matching's 31 at 0.78). Such rounds' estimates are floors:
#: so are those of the random tables, of the four negative-control runs and of the seven trust
#: benchmark runs that stall (0.00-0.07). The threshold was 0.5 alone; it kept the final matching from
#: runs given answers whose rounds did not take off but hold real links, estimated conservatively:
#: Debian e5 / MiniLM-L3 at alpha 0.15 with 45 more true seeds, rounds' links P 0.606 estimated 0.146
#: (F1 0.333; with the final matching 0.511, ceiling 0.498); mpnet / MiniLM-L3, P 0.639 estimated
#: 0.344 (F1 0.428; 0.575, ceiling 0.508).
FINAL_MATCH_MIN_PRECISION = 0.1

#: The final matching runs too when a user's answers confirmed at least this many pairs and no fewer
#: than they rejected: labels say the run's links are no chance matching, whatever the label-free
#: estimate says. A question is one of a run's links, so after a chance matching a yes is rare (the
#: stalled Debian mpnet / MiniLM-L3 at alpha 0.15 got 4 of 15); on Debian e5 / MiniLM-L3 at alpha 0.15
#: the run's questions got 13 yeses of 15 and its rounds' estimate stayed a floor.
FINAL_MATCH_MIN_CONFIRMED = 5


@dataclass(frozen=True)
class FitRows:
    """The rows a run learns on (:meth:`Backend.fit_tables`), each table's duplicates left out
    (:mod:`veclink_spark.duplicates`; the seeds are always kept). ``sample_*_ids``: the sample's
    ids before that, row for row with the duplicates' positions."""

    left_ids: np.ndarray
    left: np.ndarray
    right_ids: np.ndarray
    right: np.ndarray
    whole: bool
    left_duplicates: Duplicates
    right_duplicates: Duplicates
    sample_left_ids: np.ndarray
    sample_right_ids: np.ndarray

    def duplicate_rows(self) -> pd.DataFrame:
        """The rows left out: side, id, kept_id (the row of its group the run links)."""
        parts = []
        for side, ids, dup in (
            ("left", self.sample_left_ids, self.left_duplicates),
            ("right", self.sample_right_ids, self.right_duplicates),
        ):
            out = ~dup.keep
            parts.append(pd.DataFrame({"side": side, "id": ids[out], "kept_id": ids[dup.kept_for[out]]}))
        return pd.concat(parts, ignore_index=True)

    def positions(self, left_ids: np.ndarray, right_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each id's row in this sample (-1: not in it)."""
        return rows_of(self.left_ids, left_ids), rows_of(self.right_ids, right_ids)


def rows_of(table_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Each of ``ids``' row in ``table_ids`` (-1: not in it)."""
    at = {k: i for i, k in enumerate(np.asarray(table_ids).tolist())}
    return np.array([at.get(k, -1) for k in np.asarray(ids).tolist()], dtype=np.int64)


def _touches_core(pl: np.ndarray, pr: np.ndarray, core: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Whether a link (its left and right rows in a region basis, -1: not in it) has a row in a core."""
    return ((pl >= 0) & core[0][np.maximum(pl, 0)]) | ((pr >= 0) & core[1][np.maximum(pr, 0)])


def fit_rows(backend: Backend, seed_left: np.ndarray, seed_right: np.ndarray, size: int) -> FitRows:
    """The fit sample of ``backend`` (at most ``size`` rows a side), without duplicate rows."""
    lids, lx, rids, rx, whole = backend.fit_tables(seed_left, seed_right, size)
    dl = find_duplicates(lids, lx, np.isin(lids, seed_left))
    dr = find_duplicates(rids, rx, np.isin(rids, seed_right))
    return FitRows(lids[dl.keep], lx[dl.keep], rids[dr.keep], rx[dr.keep], whole, dl, dr, lids, rids)


#: A run larger than its fit sample is estimated in this many regions of its tables (at most one per
#: link): each the rows nearest one link chosen at random (by a hash of its left id).
REGIONS = 60

#: Each region holds MARGIN times the rows whose matches it counts (its core): the margin gives the
#: core's rows every neighbour they have in the whole tables. Measured (20,000 clustered rows a side,
#: 30 regions of 8,000 rows in all, whole run 0.686 right): margin 3 estimates 0.655, margin 2 0.633,
#: no margin (a core of 8,000 rows) 0.54-0.59.
MARGIN = 3

#: Salt of the hash that draws the regions' centres.
ESTIMATE_SALT = 1


@dataclass(frozen=True)
class EstimateBasis:
    """The rows a run's links are estimated on: the fit rows when they are the whole tables (``core``
    None); else regions of the tables with their margins (``rows``), of which the rows ``core``
    (left mask, right mask) are counted (:func:`veclink_spark.precision.estimate_precision`)."""

    rows: FitRows
    core: tuple[np.ndarray, np.ndarray] | None = None

    def counted(self, anchors: dict[str, np.ndarray]) -> np.ndarray:
        """Which of the links ``anchors`` are estimated here: on regions, the non-seed links with both
        rows in them and one in a core; on the whole tables, every non-seed link."""
        seeds = np.asarray(anchors["is_seed"], bool)
        pl, pr = self.rows.positions(anchors["left_id"], anchors["right_id"])
        inside = (pl >= 0) & (pr >= 0) & ~seeds
        return inside if self.core is None else inside & _touches_core(pl, pr, self.core)


def estimate_basis(
    backend: Backend, anchors: dict[str, np.ndarray], rows: FitRows, size: int
) -> EstimateBasis:
    """Where :func:`link_precision` estimates a run's links: ``rows`` (the fit rows) when they are the
    whole tables; else :data:`REGIONS` regions of ``size`` rows a side in all, each the rows nearest
    one link (:func:`veclink_spark.kernels.samples.neighbourhood_sample` around the links' rows), of which
    the nearest ``1 / MARGIN`` are its core.

    Why regions and not the fit sample or a uniform sample: a link is judged by how its rows compete
    with their neighbours, and a sample without those neighbours makes wrong links look right. The fit
    sample lies far from most links of a large run (estimated 0.825 against 0.709 measured at 20,000
    clustered rows a side, 0.96 against 0.69 at a million); a uniform sample thins every neighbourhood
    (0.726 at rate 0.4, 0.774 at 0.1, 0.810 at 0.025 against 0.686). A region holds its core's rows
    with all their neighbours, whatever the size of the tables."""
    if rows.whole:
        return EstimateBasis(rows)
    seeds = np.asarray(anchors["is_seed"], bool)
    links = np.nonzero(~seeds)[0]
    if not len(links):
        return EstimateBasis(rows)
    return region_basis(backend, anchors, links, size)


def region_basis(
    backend: Backend, anchors: dict[str, np.ndarray], links: np.ndarray, size: int
) -> EstimateBasis:
    """The regions of :func:`estimate_basis`, centred on :data:`REGIONS` of the links at positions
    ``links`` of ``anchors`` (at random, by a hash of the left id); every link of ``anchors`` is
    counted where it touches a core."""
    seeds = np.asarray(anchors["is_seed"], bool)
    ll, lr = np.asarray(anchors["left_id"]), np.asarray(anchors["right_id"])
    centres = links[hash_sample(ll[links], min(REGIONS, len(links)), ESTIMATE_SALT)]
    regions = fit_rows(backend, ll[centres], lr[centres], size)
    # Each centre's own rows are in its region (nearest to themselves, kept as a duplicate group's
    # row): their vectors are read there, not fetched from the tables once more.
    at_l, at_r = regions.positions(ll[centres], lr[centres])
    if (at_l < 0).any() or (at_r < 0).any():
        cl, cr = backend.anchor_vectors(ll[centres], lr[centres])
    else:
        cl, cr = regions.left[at_l], regions.right[at_r]
    core = []
    for ids, x, centre in ((regions.left_ids, regions.left, cl), (regions.right_ids, regions.right, cr)):
        mask = np.zeros(len(ids), bool)
        mask[neighbourhood_sample(ids, x, centre, max(1, len(ids) // MARGIN))] = True
        core.append(mask)
    # The partners of the links of a core's rows join the regions (not counted): the two spaces'
    # neighbourhoods differ, the more so the denser the tables, and a counted row whose link partner is
    # missing would look partnerless (measured at a million rows a side without them: 0.56 estimated
    # against 0.77 for the regions' links).
    pl, pr = regions.positions(ll, lr)
    add = ~seeds & _touches_core(pl, pr, (core[0], core[1])) & ((pl < 0) | (pr < 0))
    xa, yb = backend.anchor_vectors(ll[add], lr[add])
    new_l, new_r = (pl < 0)[add], (pr < 0)[add]
    regions = replace(
        regions,
        left_ids=np.concatenate([regions.left_ids, ll[add][new_l]]),
        left=np.concatenate([regions.left, xa[new_l]]),
        right_ids=np.concatenate([regions.right_ids, lr[add][new_r]]),
        right=np.concatenate([regions.right, yb[new_r]]),
    )
    core = [
        np.concatenate([core[0], np.zeros(int(new_l.sum()), bool)]),
        np.concatenate([core[1], np.zeros(int(new_r.sum()), bool)]),
    ]
    log.info(
        "precision estimate: %d regions around random links, %d left and %d right rows (%d and %d counted; "
        "%d and %d the partners of their links)",
        len(centres),
        len(regions.left_ids),
        len(regions.right_ids),
        int(core[0].sum()),
        int(core[1].sum()),
        int(new_l.sum()),
        int(new_r.sum()),
    )
    return EstimateBasis(regions, (core[0], core[1]))


def link_precision(
    backend: Backend,
    anchors: dict[str, np.ndarray],
    basis: EstimateBasis,
    counted_ids: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
    vote: VoteNull | None = None,
) -> tuple[PrecisionEstimate, np.ndarray]:
    """Estimated precision of a run's links (:mod:`veclink_spark.precision`), per link in the order of
    ``anchors``, on ``basis`` (:func:`estimate_basis`). Also returns each link's left row in
    ``basis.rows`` (-1: not in it). ``counted_ids``: on each side, the ids of the only rows whose
    matches count towards the rows without partner (None: every row of the basis, or of its cores).
    ``vote``: the links it marks were kept by a vote of maps (``links``: a mask over ``anchors``).

    On regions, the links with a row in a region's core are estimated there; every other link reads
    its lfdr from its ``similarity`` (:func:`_link_scores`) through an isotonic fit to the estimated
    links' lfdr (:func:`_calibrated`). Measured (20,000 clustered rows a side): the links kept at 0.9
    measure 0.921 ranked so, 0.885 ranked by a CSLS score against a uniform sample of the tables
    (8,000 rows a side), whose sparse neighbourhoods rank the links of a large run poorly."""
    seeds = np.asarray(anchors["is_seed"], bool)
    ll, lr = np.asarray(anchors["left_id"]), np.asarray(anchors["right_id"])
    rows = basis.rows
    pl, pr = rows.positions(ll, lr)
    inside = (pl >= 0) & (pr >= 0)
    pos = np.where(inside, pl, -1)
    if basis.core is None:
        est = estimate_precision(
            rows.left,
            rows.right,
            pl[inside],
            pr[inside],
            seeds[inside],
            _counted_rows(rows, None, counted_ids),
            _within(vote, inside),
        )
        lfdr, score, first = (np.full(len(ll), np.nan) for _ in range(3))
        lfdr[inside], score[inside], first[inside] = est.lfdr, est.score, est.first_lfdr
        return replace(
            est, lfdr=lfdr, score=score, precision=prefix_precision(score, lfdr), first_lfdr=first
        ), pos
    core_l, core_r = basis.core
    counted = basis.counted(anchors)
    est = estimate_precision(
        rows.left,
        rows.right,
        pl[inside],
        pr[inside],
        ~counted[inside],
        _counted_rows(rows, basis.core, counted_ids),
        _within(vote, inside),
    )
    own = np.full(len(ll), np.nan)
    own[inside] = est.lfdr
    score = _link_scores(anchors)
    lfdr = _calibrated(score, own, counted, seeds)
    known = lfdr[~seeds]
    scale_l, scale_r = backend.n_left / max(int(core_l.sum()), 1), backend.n_right / max(int(core_r.sum()), 1)
    est = replace(
        est,
        lfdr=lfdr,
        first_lfdr=lfdr,  # the links outside the regions have no first fit of their own
        score=score,
        precision=prefix_precision(score, lfdr),
        estimated_precision=float(1.0 - known.mean()) if len(known) else None,
        estimated_true_links=float((1.0 - known).sum()),
        partnerless_left=est.partnerless_left * scale_l,
        partnerless_right=est.partnerless_right * scale_r,
    )
    return est, pos


def _counted_rows(
    rows: FitRows,
    core: tuple[np.ndarray, np.ndarray] | None,
    counted_ids: tuple[np.ndarray | None, np.ndarray | None],
) -> tuple[np.ndarray, np.ndarray] | None:
    """The ``core`` of :func:`veclink_spark.precision.estimate_precision`: the rows of ``core`` (None:
    every row of ``rows``) whose ids are in ``counted_ids`` (None on a side: all); None when that is
    every row."""
    if core is None and all(ids is None for ids in counted_ids):
        return None
    sides = (rows.left_ids, rows.right_ids)
    base = core if core is not None else tuple(np.ones(len(own), bool) for own in sides)
    left, right = (
        (b if ids is None else b & np.isin(own, ids)).astype(float)
        for b, own, ids in zip(base, sides, counted_ids, strict=True)
    )
    return left, right


def _within(vote: VoteNull | None, inside: np.ndarray) -> VoteNull | None:
    """``vote`` with its mask of voted links cut to the links ``inside`` the basis."""
    return None if vote is None else replace(vote, links=np.asarray(vote.links, bool)[inside])


def _link_scores(anchors: dict[str, np.ndarray]) -> np.ndarray:
    """The score that ranks a large run's links: the pair's CSLS similarity in the extension round that
    last proposed it (its neighbourhoods measured over the full tables, not a sample); NaN for the
    seeds and for links no extension round proposed."""
    score = np.asarray(anchors["similarity"], dtype=np.float64).copy()
    score[np.asarray(anchors["is_seed"], bool)] = np.nan
    return score


def _calibrated(score: np.ndarray, own: np.ndarray, counted: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Each non-seed link's lfdr: the counted links keep their ``own``; the others read it from their
    ``score`` through an isotonic fit of the counted links' own (a random sample of the links, so the
    fit carries to the rest). A link without a score takes the lowest score's."""
    lfdr = np.full(len(score), np.nan)
    fit_on = counted & np.isfinite(score)
    if not fit_on.any():
        lfdr[~seeds] = 1.0
        return lfdr
    calib = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=0.0, y_max=1.0)
    calib.fit(score[fit_on], 1.0 - own[fit_on])
    s = score[~seeds]
    lfdr[~seeds] = 1.0 - calib.predict(np.where(np.isfinite(s), s, calib.X_min_))
    lfdr[counted] = own[counted]
    return lfdr


def f1_cut(
    anchors: dict[str, np.ndarray], est: PrecisionEstimate, pos: np.ndarray, n_left: int, n_right: int
) -> tuple[dict[str, np.ndarray], PrecisionEstimate, np.ndarray, dict[str, Any]]:
    """A large run's links (its extension's last round, uncut) kept up to where their estimated F1
    peaks, as :func:`veclink_spark.precision.final_matching` cuts the final matching of a small one:
    best score first, the expected right links of a prefix are the sum of ``1 - lfdr``, the expected
    true pairs the rows that have a partner (the mean of the two sides' estimates, seeds excluded).
    Seeds and links without a score are kept. Returns the kept links, their estimate, their rows in
    the basis, and the summary's figures.

    Why not the mixture cut of the links' similarities: on the 117k WordNet pair (MiniLM-L6 / L3) the
    last round's 46,297 pairs hold 34,172 of the 35,298 true ones; the mixture cut kept 28,224 of them
    (P 0.970, R 0.776 over the true pairs) where the best cut by similarity, chosen with the truth,
    keeps 35,843 (P 0.915, R 0.929: F1 0.922 against 0.862). Scratch script on the run's stored votes.
    """
    seeds = np.asarray(anchors["is_seed"], bool)
    ranked = np.nonzero(~seeds & np.isfinite(est.score) & np.isfinite(est.lfdr))[0]
    if not len(ranked):
        n = int((~seeds).sum())
        return anchors, est, pos, {"links_before": n, "kept": n, "estimated_f1": None}
    shared = expected_true_pairs(est, n_left, n_right, int(seeds.sum()))
    order, k, f1 = f1_peak(est.score[ranked], est.lfdr[ranked], shared)
    keep = np.ones(len(seeds), bool)
    keep[ranked[order[k:]]] = False
    at = np.nonzero(keep)[0]
    kept = {key: np.asarray(v)[at] for key, v in anchors.items()}
    sub = take(est, at)  # seeds' lfdr are NaN: the run-level figures are the kept links'
    cut = replace(sub, precision=prefix_precision(sub.score, sub.lfdr))
    log.info(
        "estimated F1 cut: %d of %d links kept (estimated F1 %.3f, expected true pairs %.0f)",
        int((~seeds[at]).sum()),
        int((~seeds).sum()),
        f1,
        shared,
    )
    facts = {
        "links_before": int((~seeds).sum()),
        "kept": int((~seeds[at]).sum()),
        "estimated_f1": round(f1, 4),
    }
    return kept, cut, pos[at], facts


def _final_links(
    anchors: dict[str, np.ndarray], rows: FitRows
) -> tuple[dict[str, np.ndarray], PrecisionEstimate, dict[str, Any]]:
    """The final matching's links (:func:`veclink_spark.precision.final_matching`) in the layout of
    ``anchors``: a link the run had keeps its round, votes and probability; a new one gets the round
    after the run's last, no votes, and the posterior mean of no trials (0.5)."""
    seeds = np.asarray(anchors["is_seed"], bool)
    pl, pr = rows.positions(anchors["left_id"], anchors["right_id"])
    inside = (pl >= 0) & (pr >= 0)
    fm = final_matching(rows.left, rows.right, pl[inside], pr[inside], seeds[inside])
    ll, lr = rows.left_ids[fm.left], rows.right_ids[fm.right]
    pairs = zip(anchors["left_id"].tolist(), anchors["right_id"].tolist(), strict=True)
    had = {p: i for i, p in enumerate(pairs)}
    at = np.array([had.get(p, -1) for p in zip(ll.tolist(), lr.tolist(), strict=True)], dtype=np.int64)
    old = at >= 0
    final_round = int(np.max(anchors["round"])) + 1 if len(anchors["round"]) else 1
    given = {"left_id": ll, "right_id": lr, "is_seed": fm.is_seed}
    fill = {"round": final_round, "votes": 0, "views": 0, "probability": 0.5, "similarity": np.nan}
    links: dict[str, np.ndarray] = {}
    for key, value in anchors.items():  # the engine's columns, in its order
        if key in given:
            links[key] = given[key]
            continue
        col = np.asarray(value)
        new = np.full(len(at), fill.get(key, 0), dtype=col.dtype)
        new[old] = col[at[old]]
        links[key] = new
    facts = {
        "candidates": fm.matches,
        "kept": int((~fm.is_seed).sum()),
        "from_the_rounds": int((old & ~fm.is_seed).sum()),
        "estimated_f1": None if fm.estimated_f1 is None else round(fm.estimated_f1, 4),
        "fits": fm.fits,
    }
    return links, fm.estimate, facts


def assess_links(
    backend: Backend,
    anchors: dict[str, np.ndarray],
    cfg: LinkConfig,
    answers: Answers | None = None,
    rows: FitRows | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """The steps of the module doc on a finished run's links (``anchors``: the engine's link arrays).
    ``rows``: the fit's sample around the run's seeds, when the caller has it (else drawn again: one
    more pass over the tables, as long as the fit's sample phase).

    Returns (the links, with ``precision_estimate``; the summary's figures; the duplicate rows left out
    (:meth:`FitRows.duplicate_rows`); the questions, written when :func:`asks` says so)."""
    answers = answers or Answers.empty()
    seeds = np.asarray(anchors["is_seed"], bool)
    if rows is None:
        rows = fit_rows(backend, anchors["left_id"][seeds], anchors["right_id"][seeds], cfg.scale.fit_rows)
    anchors, rejected = drop_rejected(anchors, answers)
    final: dict[str, Any] | None = None
    basis = estimate_basis(backend, anchors, rows, cfg.scale.fit_rows)
    est, pos = link_precision(backend, anchors, basis)
    rounds_precision = est.estimated_precision
    f1_facts: dict[str, Any] | None = None
    if cfg.links.final_match and basis.core is not None:
        anchors, est, pos, f1_facts = f1_cut(anchors, est, pos, backend.n_left, backend.n_right)
    estimated = not est.lower_bound and (rounds_precision or 0.0) >= FINAL_MATCH_MIN_PRECISION
    yes, no = len(answers.confirmed), len(answers.rejected)
    vouched = yes >= FINAL_MATCH_MIN_CONFIRMED and yes >= no
    if cfg.links.final_match and rows.whole and (estimated or vouched):
        if not estimated:
            log.info("final matching: %d of the user's %d answers confirmed pairs", yes, yes + no)
        anchors, est, final = _final_links(anchors, rows)
        final["rounds_estimated_precision"] = round(float(rounds_precision or 0.0), 4)
        anchors, again = drop_rejected(anchors, answers)
        if again:  # the final matching proposed pairs the user rejected: estimate the rest again
            est, pos = link_precision(backend, anchors, EstimateBasis(rows))
        else:
            pos = rows.positions(anchors["left_id"], anchors["right_id"])[0]
    seeds = np.asarray(anchors["is_seed"], bool)
    # the score the estimate ranks by, so that precision_estimate falls as similarity falls
    links = {k: v for k, v in anchors.items() if k != "similarity"}
    links.update(precision_estimate=est.precision, similarity=est.score)
    cand = np.nonzero(~seeds & (pos >= 0) & np.isfinite(est.lfdr))[0]
    picked, why = choose_questions(
        basis.rows.left[pos[cand]],
        basis.rows.left[pos[seeds & (pos >= 0)]],
        1.0 - est.lfdr[cand],
        est.score[cand],
        cfg.links.questions,
    )
    at = cand[picked]
    questions = pd.DataFrame(
        {
            "question": np.arange(1, len(at) + 1, dtype=np.int64),
            "left_id": np.asarray(anchors["left_id"])[at],
            "right_id": np.asarray(anchors["right_id"])[at],
            "chance_right": np.round(1.0 - est.lfdr[at], 4),
            "precision_estimate": np.round(est.precision[at], 4),
            "why": why,
        }
    )
    floor = cfg.links.min_precision
    before = int((~seeds).sum())
    lfdr = est.lfdr
    if floor > 0:
        keep = seeds | (np.nan_to_num(est.precision, nan=-1.0) >= floor)
        links = {k: np.asarray(v)[keep] for k, v in links.items()}
        lfdr = lfdr[keep]
    found = ~np.asarray(links["is_seed"], bool)
    known = lfdr[found][np.isfinite(lfdr[found])]
    prec = links["precision_estimate"][found]
    run_figures = est.summary()
    facts: dict[str, Any] = {
        "estimated_precision": round(float(1.0 - known.mean()), 4) if len(known) else None,
        "estimated_true_links": round(float((1.0 - known).sum()), 1),
        "trusted_links": int((np.nan_to_num(prec, nan=-1.0) >= TRUST_PRECISION).sum()),
        **{
            k: run_figures[k]
            for k in ("estimated_partnerless_rows", "knockout_match_rate", "estimate_is_lower_bound")
        },
        "precision_basis": {
            "rows": "whole tables" if basis.core is None else "regions",
            "left_rows": len(basis.rows.left_ids),
            "right_rows": len(basis.rows.right_ids),
            "regions": None if basis.core is None else min(REGIONS, int((~seeds).sum())),
            "links_estimated_in_regions": int(basis.counted(anchors).sum()),
        },
        "final_matching": final,
        "f1_cut": f1_facts,
        "min_precision": {"value": floor, "links_before": before, "links_dropped": before - int(found.sum())},
        "duplicates": {
            side: {"groups": dup.groups, "rows_left_out": dup.dropped}
            for side, dup in (("left", rows.left_duplicates), ("right", rows.right_duplicates))
        },
        "answers": {
            "confirmed": len(answers.confirmed),
            "rejected": len(answers.rejected),
            "rejected_links_dropped": rejected,
        },
    }
    log.info(
        "estimated precision %s over %d links (%.0f right); %d links at %.2f or more%s",
        facts["estimated_precision"],
        int(found.sum()),
        facts["estimated_true_links"],
        facts["trusted_links"],
        TRUST_PRECISION,
        f"; links.min_precision {floor} dropped {before - int(found.sum())}" if floor > 0 else "",
    )
    return links, facts, rows.duplicate_rows(), questions


def checked_min_precision(value: float | None) -> float | None:
    """``value`` as a ``min_precision`` (None: the default of the caller), or InputError when it is not
    between 0 and 1: raised before any work, so nothing is written."""
    if value is None:
        return None
    if not 0.0 <= float(value) <= 1.0:
        raise InputError(f"min_precision must be between 0 and 1, got {value!r}")
    return float(value)


def assess_new_links(
    backend: Backend,
    fitted: dict[str, np.ndarray],
    new: dict[str, np.ndarray],
    new_rows: tuple[str, np.ndarray],
    vote: tuple[np.ndarray, int],
    cfg: LinkConfig,
    min_precision: float | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The estimate of :func:`assess_links` for the links of rows that arrived after a run (``new``:
    the links of a model's new-rows round, :func:`veclink_spark.engine.vote_round`), on ``backend``'s
    tables (the fitted rows, the new ones and the other side's). The model's links (``fitted``:
    left_id, right_id, is_seed; those with both rows in the tables) take part as a run's links do
    (they fit the estimate's maps, their rows compete) and are not reported. The tables fit in
    ``scale.fit_rows``: they are estimated whole; else on regions centred on new links
    (:func:`region_basis`), the new links outside them reading their lfdr from the round's similarity
    through the counted new links'.

    Nothing of the model's run is carried over: the new rows may have partners more or less often than
    the fitted ones did, so on their side the rows without partner are counted among the new rows
    alone (``new_rows``: their side and every new row's id, linked or not), the knock-outs of all the
    links giving the null. The new links are the matches a vote of the model's bagged maps kept
    (``vote``: the maps and the votes a link needs), which drops most partnerless rows' matches: the
    null counts a knock-out only where the same vote keeps its match
    (:class:`veclink_spark.precision.VoteNull`). Measured against the truth: ``python
    benchmarks/new_rows.py``. ``min_precision`` (default ``links.min_precision``) keeps the new links
    whose ``precision_estimate`` is at least it.

    Returns (the new links with ``precision_estimate`` and ``similarity``, the score it ranks them by;
    the summary's figures)."""
    floor = cfg.links.min_precision if min_precision is None else float(min_precision)
    n_new = len(new["left_id"])
    # in id order, as both engines read them alike (the estimate's folds go by position)
    old = pd.DataFrame({k: np.asarray(fitted[k]) for k in ("left_id", "right_id", "is_seed")})
    old = old.sort_values(["left_id", "right_id"], kind="stable")
    old_seeds = old["is_seed"].to_numpy(bool)
    anchors = {
        "left_id": np.concatenate([old["left_id"].to_numpy(), np.asarray(new["left_id"])]),
        "right_id": np.concatenate([old["right_id"].to_numpy(), np.asarray(new["right_id"])]),
        "is_seed": np.concatenate([old_seeds, np.zeros(n_new, bool)]),
        # only the new links' similarity calibrates the links outside the regions
        "similarity": np.concatenate(
            [np.full(len(old_seeds), np.nan), np.asarray(new["similarity"], np.float64)]
        ),
    }
    is_new = np.concatenate([np.zeros(len(old_seeds), bool), np.ones(n_new, bool)])
    links = {k: np.asarray(v) for k, v in new.items() if k != "similarity"}
    if not n_new:
        links.update(precision_estimate=np.zeros(0), similarity=np.zeros(0))
        return links, {
            "estimated_precision": None,
            "estimated_true_links": 0.0,
            "trusted_links": 0,
            "estimate_is_lower_bound": False,
            "precision_basis": None,
            "min_precision": {"value": floor, "links_before": 0, "links_dropped": 0},
        }
    size = cfg.scale.fit_rows
    if backend.n_left <= size and backend.n_right <= size:
        # the whole tables; the seeds (else the new links) only decide which row of a duplicate
        # group is kept
        keep = anchors["is_seed"] if old_seeds.any() else is_new
        basis = EstimateBasis(fit_rows(backend, anchors["left_id"][keep], anchors["right_id"][keep], size))
    else:
        basis = region_basis(backend, anchors, np.nonzero(is_new)[0], size)
    side, new_ids = new_rows
    est, _ = link_precision(
        backend,
        anchors,
        basis,
        (new_ids, None) if side == "left" else (None, new_ids),
        VoteNull(vote[0], vote[1], 0 if side == "left" else 1, is_new),
    )
    lfdr, score = est.lfdr[is_new], est.score[is_new]
    precision = prefix_precision(score, lfdr)
    links.update(precision_estimate=precision, similarity=score)
    before = n_new
    if floor > 0:
        keep = np.nan_to_num(precision, nan=-1.0) >= floor
        links = {k: np.asarray(v)[keep] for k, v in links.items()}
        lfdr = lfdr[keep]
    known = lfdr[np.isfinite(lfdr)]
    prec = links["precision_estimate"]
    facts = {
        "estimated_precision": round(float(1.0 - known.mean()), 4) if len(known) else None,
        "estimated_true_links": round(float((1.0 - known).sum()), 1),
        "trusted_links": int((np.nan_to_num(prec, nan=-1.0) >= TRUST_PRECISION).sum()),
        "estimate_is_lower_bound": est.lower_bound,
        "precision_basis": {
            "rows": "whole tables" if basis.core is None else "regions",
            "left_rows": len(basis.rows.left_ids),
            "right_rows": len(basis.rows.right_ids),
            "new_links_estimated_in_regions": int((basis.counted(anchors) & is_new).sum()),
        },
        "min_precision": {"value": floor, "links_before": before, "links_dropped": before - len(prec)},
    }
    log.info(
        "new links: estimated precision %s over %d links (%.0f right); %d at %.2f or more%s",
        facts["estimated_precision"],
        len(prec),
        facts["estimated_true_links"],
        facts["trusted_links"],
        TRUST_PRECISION,
        f"; min_precision {floor} dropped {before - len(prec)}" if floor > 0 else "",
    )
    return links, facts


def asks(summary: dict[str, Any], cfg: LinkConfig) -> bool:
    """Whether a finished run writes its questions: ``links.ask`` always, never, or (auto) when it is
    not sure of its links: a stall, or an estimated precision under ``ASK_BELOW_PRECISION``."""
    if cfg.links.ask != "auto":
        return cfg.links.ask == "always"
    est = summary.get("estimated_precision")
    return bool(summary.get("verdict") == "stalled" or est is None or est < ASK_BELOW_PRECISION)
