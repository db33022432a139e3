"""The round driver of the method, independent of where the vectors live.

This module runs on the driver only. It owns the loop of ``algorithm.md`` ("The loop"): sample the
round's views, ask a backend for the round's mutual-nearest-neighbour votes, turn them into scores,
pick the Otsu threshold (with a floor), promote one-to-one, decide whether to go on, and hand the
round's state to the backend to persist. Two backends implement the vote computation:
:class:`veclink_spark.backends.spark.SparkBackend` (executors, Delta tables) and
:class:`veclink_spark.backends.in_process.NumpyBackend` (in-process numpy), both behind the
:class:`veclink_spark.backends.base.Backend` protocol. Because both share this driver and
the kernels of :mod:`veclink_spark.kernels`, the Spark job and the in-process API give the same
links.

Phases. ``geh`` rounds are the published loop. When ``refine.mode`` is ``procrustes``, the run switches
to ``refine`` rounds once the anchors reach :data:`MIN_ANCHORS` or a ``geh`` round promotes nothing.
Refine rounds fit orthogonal maps (Procrustes on the dictionary, each seed weighted
:data:`SEED_WEIGHT` in the fit's take-off) and propose CSLS mutual nearest neighbours in the mapped
space, in two stages (measurements in ``docs/method.md``):

- ``takeoff``: with ``refine.init`` ``distribution`` its first round (``procrustes/init``) proposes the
  CSLS mutual nearest neighbours of the rows' similarity-distribution descriptors (no map yet); then
  :data:`TAKEOFF_MAPS` map fitted on the whole dictionary = every pair the previous round proposed
  (VecMap-style self-learning, with stochastic dictionary induction); ends when the link set changes
  by at most :data:`SETTLE_FRACTION` (once the kept share is 1) or at ``refine.max_rounds``. Its last
  links are then cut at the mixture threshold of their similarities when the mixture's components are
  separated (``refine.mixture_separation``);
- ``polish``: ``refine.polish_rounds`` rounds of :data:`POLISH_MAPS` maps, each fitted on a random
  :data:`BAG_FRACTION` of the current links; a link needs :data:`POLISH_MIN_VOTE_FRACTION` of the maps
  (stability under resampling is what separates true pairs from one-sided objects' best matches).
  After a mixture cut (with ``refine.polish_after_cut``) the bags come from the cut links and the
  pairs :data:`UNION_VOTE_FRACTION` of the maps agree on are added to the cut links: a link is kept
  when its score is in the upper component or when it is stable under resampling. A cut whose
  components are separated by at least ``refine.union_max_separation`` ends the run instead (few right
  links lie under a cut that clean).

Refine rounds re-derive the link set each round (earlier refine links can be revoked); the fixed pairs
(:func:`run_rounds`'s: the seeds) are never revoked.

The ``extend`` phase (:mod:`veclink_spark.extend`) links the full tables after a fit on a sample: its
fixed pairs are the fitted links (no seed weight, no distribution initialisation, kept share 1 from
its first round, whose dictionary is the fitted links alone), its rounds search each row in
:data:`SETTLE_PROBES` of the extension's fixed cells until the take-off settles (or for
``scale.max_rounds`` rounds), then one last round searches each row in ``scale.probes`` cells or more
(up to ``scale.max_probes``, as many as its measured search recall asks for:
:mod:`veclink_spark.search_recall`), and its links end the run, uncut
(:func:`veclink_spark.trust.f1_cut` cuts them after the rounds; with ``links.final_match`` false,
the mixture cut), with no polish.

Shape of a round (:func:`run_rounds`): the phase's round function (:func:`_geh_round` or
:func:`_refine_round`) asks the backend for the round's votes (a :class:`RoundPlan`), :func:`_promote`
turns them into promoted links (a :class:`Promotion`), the round's record joins the history, and
:func:`_advance` alone decides whether the phase or stage ends and whether the run is done; the
backend then persists the anchors and the :class:`RunState`. Dotted settings named here live under
``advanced`` in configuration files (``scale.*`` at the top); capitalised ones are this module's
constants.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from .backends.base import FIT_CELL_PROBES, INIT_SAMPLE, Backend
from .config import LinkConfig, RefineConfig
from .kernels.blocking import cell_centroids
from .kernels.maps import CROSS_DECIMALS, procrustes_map
from .kernels.promotion import CUT_DECIMALS, greedy_one_to_one, mixture_cut, otsu_threshold
from .kernels.signatures import sample_views
from .search_recall import chosen_probes, search_recall
from .state import (
    Candidates,
    Promotion,
    RoundPlan,
    RoundRecord,
    RunResult,
    RunState,
    empty_candidates,
)

log = logging.getLogger(__name__)

# The method's fixed settings (no measurement in the repository varies them; docs/method.md has the
# ones that were measured). The settings a run or a study changes are in veclink_spark.config.

# Views of the published loop (kernels.signatures.sample_views): m_t = ceil(m0 (1 + c log g_t)) views of
# s_t = ceil(rho0 |L| / sf_t) anchors, sf_t = 1 + c log g_t, g_t = |L_t-1| / |L_0| (anchor growth).
#: c: how fast the views multiply and shrink as the anchors grow (our reading of the paper's schedule).
VIEW_GROWTH = 0.5
#: rho0: a view's share of the anchors at the start.
VIEW_FRACTION = 0.35
#: Smallest view (anchors): fewer anchors do not single out a row.
MIN_VIEW_SIZE = 4
#: Largest view of the random branch (anchors).
MAX_VIEW_SIZE = 64
#: rho: once the anchors outnumber the dimension, each anchor joins its 2 nearest k-means clusters, so
#: neighbouring views overlap.
KMEANS_OVERLAP = 2
#: Kernel bandwidth as a multiple of the view's median anchor-anchor distance, per side.
BANDWIDTH = 1.0
#: The Beta(1, 1) prior of a link's vote evidence: its probability is (1 + votes) / (2 + views).
PRIOR_ALPHA = 1.0
PRIOR_BETA = 1.0
#: Floor under the loop's Otsu threshold: a pair needs a quarter of the round's views (Otsu alone
#: always splits, and keeps promoting after the overlap is used up).
GEH_MIN_VOTE_FRACTION = 0.25

# Refinement (VecMap-style self-learning; docs/method.md).
#: Anchors at which the loop hands over to refinement: with fewer, anchor distances do not carry
#: enough information to single out a row among thousands (benchmarks/anchor_information).
MIN_ANCHORS = 60
#: Weight of each seed pair in the take-off maps' cross-covariance (induced pairs weigh 1): keeps the
#: early maps on the seeds while the induced dictionary is mostly wrong. Not in the full-table rounds,
#: whose dictionary is the fitted links (1 = plain VecMap there).
SEED_WEIGHT = 100.0
#: Maps per take-off round, each fitted on the whole dictionary (extra bags only cost time while the
#: dictionary is mostly wrong).
TAKEOFF_MAPS = 1
#: The take-off ends when at most this share of its links changed (added + removed) in a round.
SETTLE_FRACTION = 0.03
#: A take-off round gains when its objective exceeds the best so far by this much (VecMap's rule).
KEEP_MIN_GAIN = 0.0005
#: Bagged maps per polish round (and of a model's new-rows vote).
POLISH_MAPS = 8
#: Share of the links each bagged map is fitted on: small shares make the maps differ, so the votes
#: measure stability.
BAG_FRACTION = 0.3
#: A polish link needs 7 of the 8 bagged maps.
POLISH_MIN_VOTE_FRACTION = 0.875
#: After a mixture cut, a polish pair joins the cut links when all 8 bagged maps propose it.
UNION_VOTE_FRACTION = 1.0
#: Polishing stops when fewer than this share of its links changed in a round.
STABLE_FRACTION = 0.01
#: Right rows per k-means cell of the fit's blocked search (one cell, the exact search, up to this):
#: a block's dense score matrices are block_rows^2 floats per side. The full-table rounds use
#: ``scale.block_rows``.
FIT_BLOCK_ROWS = 8000
#: Cells each row of an extension's rounds is searched in while its map settles; its last round uses
#: ``scale.probes``. A map fitted on the pairs found within one cell is as good as one fitted on those
#: found across three (thousands of pairs either way), and a one-probe round is about a ninth of the
#: block work of a three-probe one (a block's work is left rows x right rows, each side's rows
#: replicated per probe). Measured, three-probe rounds throughout against this (scratch runs of
#: ``jobs/link.py``): see docs/method.md, "The extension".
SETTLE_PROBES = 1


def block_cells(n_right: int, block_rows: int) -> int:
    """Cells of a blocked search over a right table of ``n_right`` rows, about ``block_rows`` each (one
    cell, the exact search, up to ``block_rows``)."""
    return max(1, math.ceil(n_right / block_rows))


def _score(rv: np.ndarray, m: int) -> np.ndarray:
    """The score promotion thresholds: a pair's votes as a fraction of the round's ``m`` views."""
    return rv / max(m, 1)


def _anchor_table(
    left: list,
    right: list,
    rounds: list[int],
    seed_flags: list[bool],
    votes: list[int],
    views: list[int],
    prob: list[float],
    similarity: list[float],
) -> dict[str, np.ndarray]:
    """The anchor table's columns. ``similarity``: the pair's CSLS score in the round that promoted it
    (:attr:`Candidates.sim`; NaN for the seeds, and the fitted links of an extension get theirs from its
    last round, :func:`veclink_spark.extend.extend`): the score that ranks the links of a run too large
    to estimate each link on its own neighbours (:func:`veclink_spark.trust.link_precision`)."""
    return {
        "left_id": np.asarray(left),
        "right_id": np.asarray(right),
        "round": np.asarray(rounds, dtype=np.int64),
        "is_seed": np.asarray(seed_flags, dtype=bool),
        "votes": np.asarray(votes, dtype=np.int64),
        "views": np.asarray(views, dtype=np.int64),
        "probability": np.asarray(prob, dtype=np.float64),
        "similarity": np.asarray(similarity, dtype=np.float64),
    }


def run_rounds(
    backend: Backend,
    fixed_left: np.ndarray,
    fixed_right: np.ndarray,
    cfg: LinkConfig,
    state_extra: dict[str, Any] | None = None,
    resumed: tuple[int, dict[str, np.ndarray], RunState] | None = None,
    cells: np.ndarray | None = None,
) -> RunResult:
    """Run (or resume) the loop to the end. Returns the final anchor table and the run state.

    ``fixed_left[i], fixed_right[i]``: the pairs the rounds keep and never revoke, whose rows no round
    links again: the seeds of a fit (a fresh run starts from them, flagged ``is_seed``), the fitted links
    of an extension (resumed from the state :func:`veclink_spark.extend.start` committed, phase
    ``extend``). They are sorted by (left id, right id) first, so the input row order does not matter.

    ``cells``: the blocking cells of every refine round, fixed (an extension's,
    :func:`veclink_spark.extend.extension_cells`); None: each round fits its cells on the anchors.
    """
    order = np.lexsort((fixed_right, fixed_left))
    fixed_left, fixed_right = np.asarray(fixed_left)[order], np.asarray(fixed_right)[order]
    fixed = set(zip(fixed_left.tolist(), fixed_right.tolist(), strict=True))
    n_fixed = len(fixed_left)
    rf = cfg.refine
    if resumed is None:
        resumed = backend.load_last_round()  # the caller may have loaded it already
    if resumed is None:
        round_no = 0
        ones = [1.0] * n_fixed
        zeros = [0] * n_fixed
        anchors = _anchor_table(
            list(fixed_left),
            list(fixed_right),
            zeros,
            [True] * n_fixed,
            zeros,
            zeros,
            ones,
            [math.nan] * n_fixed,
        )
        state = RunState(extra=dict(state_extra or {}))
    else:
        round_no, anchors, state = resumed
        log.info("resuming after committed round %d (phase %s)", round_no, state.phase)
    extending = state.phase == "extend"
    if rf.mode == "procrustes" and 0 < rf.max_rounds <= cfg.takeoff_keep_rounds() and not extending:
        log.warning(
            "advanced.refine.max_rounds (%d) can end the take-off before its kept share "
            "(advanced.refine.takeoff_keep %g) reaches 1, and then it cannot settle; raise it above %d or "
            "set advanced.refine.takeoff_keep: 1.0",
            rf.max_rounds,
            rf.takeoff_keep,
            cfg.takeoff_keep_rounds(),
        )
    while not state.done:
        round_no += 1
        t0 = time.time()
        rng = np.random.default_rng([cfg.run.seed, round_no])
        backend.label_round(round_no, "extend" if extending else f"{state.phase}-{state.stage}")
        n_anchors = len(anchors["left_id"])
        if state.phase == "geh":
            plan = _geh_round(backend, cfg, state, round_no, rng, anchors, n_fixed)
        else:
            plan = _refine_round(backend, cfg, state, round_no, rng, anchors, fixed_left, fixed_right, cells)
        n_views_phase = state.phase_views + plan.views
        promo = _promote(backend, cfg, state, plan, round_no, anchors, fixed_left, fixed_right)
        cand = promo.cand
        prob = _posterior_mean(cand, n_views_phase)
        before = anchors
        fixed_only = {k: v[fixed_rows(anchors, fixed)] for k, v in anchors.items()}
        if state.phase == "geh" or plan.union:
            # The loop adds to its anchors; a union polish adds to the cut links (and the seeds).
            anchors = _append(anchors, cand, promo.promoted, round_no, n_views_phase, prob)
        else:
            anchors = _append(fixed_only, cand, promo.promoted, round_no, n_views_phase, prob, old=before)
        added, removed = _churn(before, anchors, fixed)
        record = RoundRecord(
            round=round_no,
            phase=state.phase,
            views_branch=plan.branch,
            views=plan.views,
            keep=plan.keep,
            anchors_before=n_anchors,
            candidates=int(plan.votes.cells[:, 2].sum()) if len(plan.votes.cells) else 0,
            threshold=None if not math.isfinite(promo.threshold) else float(promo.threshold),
            floor=float(plan.floor),
            mixture=promo.mixture,
            promoted=len(promo.promoted),
            added=added,
            removed=removed,
            links=int((~fixed_rows(anchors, fixed)).sum()),
            seconds=round(time.time() - t0, 3),
            backend=dict(plan.votes.stats),
        )
        state.phase_views = n_views_phase
        state.phase_rounds += 1
        objective = plan.votes.stats.get("objective")
        log.info(
            "round %d [%s/%s%s] anchors %d, candidates %d, threshold %s, promoted %d (+%d -%d), "
            "links %d, %.1f s",
            round_no,
            state.phase,
            plan.branch,
            ("" if plan.keep >= 1.0 else f", keep {plan.keep:g}")
            + ("" if objective is None else f", objective {objective:.4f}"),
            n_anchors,
            record.candidates,
            "-" if record.threshold is None else f"{record.threshold:.3f}",
            len(promo.promoted),
            added,
            removed,
            record.links,
            record.seconds,
        )
        anchors = _advance(cfg, state, plan, promo, record, round_no, anchors, fixed_only, before, prob)
        state.history.append(record.to_dict())
        if round_no >= _round_cap(cfg, state) and not state.done:
            state.done, state.stop_reason = True, "round cap"
        t_commit = time.time()
        backend.save_round(round_no, anchors, state)
        # the commit's seconds reach the stored state with the next round's (the summary has them all)
        state.history[-1]["commit_seconds"] = round(time.time() - t_commit, 3)
    return RunResult(anchors=anchors, state=state, rounds=round_no)


def fixed_rows(anchors: dict[str, np.ndarray], fixed: set[tuple[Any, Any]]) -> np.ndarray:
    """True for the anchor table's rows that are fixed pairs (:func:`run_rounds`)."""
    pairs = zip(anchors["left_id"].tolist(), anchors["right_id"].tolist(), strict=True)
    return np.fromiter((p in fixed for p in pairs), dtype=bool, count=len(anchors["left_id"]))


def _takeoff_rounds(cfg: LinkConfig, state: RunState) -> int:
    """Most rounds of the phase's take-off: ``scale.max_rounds`` in an extension, else
    ``refine.max_rounds``."""
    return cfg.scale.max_rounds if state.phase == "extend" else cfg.refine.max_rounds


def _round_cap(cfg: LinkConfig, state: RunState) -> int:
    """The last round a run may reach: the fit's phases at their caps, or the fit's rounds, the
    extension's take-off and its last search."""
    if state.extension is not None:
        return state.extension.fit_rounds + cfg.scale.max_rounds + int(_last_search_needed(cfg))
    return cfg.bootstrap.max_rounds + cfg.refine.max_rounds + cfg.refine.polish_rounds


def _last_search_needed(cfg: LinkConfig) -> bool:
    """Whether an extension ends with a round in more cells than its settling rounds' (or one that
    chooses how many, ``scale.max_probes``)."""
    return cfg.scale.probes > SETTLE_PROBES or cfg.scale.max_probes > cfg.scale.probes


def _search_probes(cfg: LinkConfig, state: RunState) -> int:
    """Cells each row of a refine round is searched in: the fit's FIT_CELL_PROBES; an extension's
    SETTLE_PROBES while its map settles, ``scale.probes`` in its last round (and when that is fewer;
    the last round may then search more: :func:`_refine_round`)."""
    if state.phase != "extend":
        return FIT_CELL_PROBES
    return cfg.scale.probes if state.last_search else min(SETTLE_PROBES, cfg.scale.probes)


def vote_round(
    backend: Backend,
    cfg: LinkConfig,
    maps: np.ndarray,
    cells: np.ndarray,
    exclude_left: np.ndarray,
    exclude_right: np.ndarray,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Link the backend's tables with fixed, already fitted maps: one polish-style round.

    This is how a fitted model links rows that arrive later (:mod:`veclink_spark.model`): each of the
    ``maps`` (the bagged maps) proposes the CSLS mutual nearest neighbours in its mapped space, blocked by
    ``cells`` (each row searched in its ``scale.probes`` nearest and its match chosen across them with
    its largest r, as in the full-table rounds); a pair
    needs :data:`POLISH_MIN_VOTE_FRACTION` of the maps, pairs touching an excluded id (the
    pairs ``exclude_left[i], exclude_right[i]``: links already made) are left out, the rest are promoted
    one-to-one, and a link's probability is the posterior mean of its votes, as in a run's polish round.
    Returns the link table (the columns of a run's anchors, none a seed) and the round's record.
    """
    t0 = time.time()
    votes = backend.refine_votes(1, maps, cells, exclude_left, exclude_right, True, probes=cfg.scale.probes)
    plan = RoundPlan(votes, len(maps), POLISH_MIN_VOTE_FRACTION, "procrustes/new-rows")
    state = RunState(phase="refine", stage="polish")
    empty = _anchor_table([], [], [], [], [], [], [], [])
    promo = _promote(backend, cfg, state, plan, 1, empty, exclude_left, exclude_right)
    cand = promo.cand
    links = _append(empty, cand, promo.promoted, 1, len(maps), _posterior_mean(cand, len(maps)))
    record = {
        "maps": len(maps),
        "candidates": int(votes.cells[:, 2].sum()) if len(votes.cells) else 0,
        "links": len(promo.promoted),
        "seconds": round(time.time() - t0, 3),
        **votes.stats,
    }
    return links, record


def _posterior_mean(cand: Candidates, n_views: int) -> np.ndarray:
    """Each candidate's link probability: the posterior mean of its votes over ``n_views`` views under
    the Beta(:data:`PRIOR_ALPHA`, :data:`PRIOR_BETA`) prior."""
    if not len(cand.cum_votes):
        return np.array([])
    return (PRIOR_ALPHA + cand.cum_votes) / (PRIOR_ALPHA + PRIOR_BETA + n_views)


def _geh_round(
    backend: Backend,
    cfg: LinkConfig,
    state: RunState,
    round_no: int,
    rng: np.random.Generator,
    anchors: dict[str, np.ndarray],
    n_seeds: int,
) -> RoundPlan:
    """A round of the published loop: views of the anchors, signatures, hash-join votes."""
    al, ar = anchors["left_id"], anchors["right_id"]
    vec_l, vec_r = backend.anchor_vectors(al, ar)
    views, branch = sample_views(
        vec_l,
        vec_r,
        n_seeds,
        max(backend.dim_left, backend.dim_right),
        base_views=cfg.views.base_views,
        growth=VIEW_GROWTH,
        view_fraction=VIEW_FRACTION,
        min_view_size=MIN_VIEW_SIZE,
        max_view_size=MAX_VIEW_SIZE,
        kmeans_overlap=KMEANS_OVERLAP,
        bandwidth=BANDWIDTH,
        rng=rng,
    )
    votes = backend.geh_votes(round_no, vec_l, vec_r, views, al, ar, state.phase_rounds == 0)
    return RoundPlan(votes, len(views), GEH_MIN_VOTE_FRACTION, branch)


def _refine_round(
    backend: Backend,
    cfg: LinkConfig,
    state: RunState,
    round_no: int,
    rng: np.random.Generator,
    anchors: dict[str, np.ndarray],
    fixed_left: np.ndarray,
    fixed_right: np.ndarray,
    cells: np.ndarray | None,
) -> RoundPlan:
    """A refinement round: fit the stage's map(s) on the dictionary, propose CSLS mutual nearest
    neighbours of the mapped vectors (docs/method.md). Two stages: 'takeoff' rounds fit one map on the
    whole dictionary (VecMap-style self-learning; extra bags only cost time while the dictionary is
    mostly wrong), 'polish' rounds fit POLISH_MAPS maps on small random shares of it and keep the pairs
    (nearly) all maps agree on. The fit's rounds search each row in FIT_CELL_PROBES cells of about
    FIT_BLOCK_ROWS right rows; an extension's (fixed ``cells``) in ``scale.probes``, with the whole
    candidate set kept from its first round (the fitted links make a good first dictionary)."""
    rf = cfg.refine
    phase_start = state.phase_rounds == 0
    stage = state.stage
    extending = state.phase == "extend"
    branch = "procrustes/last-search" if extending and state.last_search else f"procrustes/{stage}"
    if stage == "takeoff" and phase_start and rf.init == "distribution" and not extending:
        # The first take-off dictionary from the similarity-distribution descriptors (no map yet): the
        # next round fits its map on these proposals plus the weighted seeds (docs/method.md).
        n_cells = max(1, min(block_cells(backend.n_right, FIT_BLOCK_ROWS), INIT_SAMPLE // 4))
        votes = backend.distribution_votes(
            round_no, n_cells, cells_seed(n_cells, rng), fixed_left, fixed_right, phase_start
        )
        return RoundPlan(votes, TAKEOFF_MAPS, 0.0, "procrustes/init", init=True)
    salt = cfg.run.seed * 1_000_003 + round_no
    # After a mixture cut (docs/method.md, "Union of the cut and the polish vote") the bags come from
    # the cut links, and the pairs the maps agree on join them.
    union = state.cut_round is not None
    # Take-off: the dictionary is every pair the previous round proposed (VecMap). Polish: the current
    # links (already vote-filtered; the union of the bags' proposals is much noisier, measured).
    prev = round_no - 1 if not phase_start and stage == "takeoff" else None
    if stage == "takeoff":
        m, fraction, floor = TAKEOFF_MAPS, 1.0, 0.0
    else:
        m, fraction = POLISH_MAPS, BAG_FRACTION
        floor = UNION_VOTE_FRACTION if union else POLISH_MIN_VOTE_FRACTION
    if extending and phase_start:
        # The extension's first dictionary is the fitted links alone (at most scale.fit_rows pairs: a
        # small product on the driver); the anchors it starts from are the same pairs.
        fl, fr = backend.anchor_vectors(fixed_left, fixed_right)
        cross = (fl.T @ fr)[None, :, :]
    else:
        cross = backend.cross_covariance(prev, m, fraction, salt, fixed_left, fixed_right)
    if stage == "takeoff" and not extending:
        # The seeds are the only pairs known to be right: weigh them up against the (early: mostly
        # wrong) induced dictionary; a small (n_seeds x d) product on the driver. Not in polish, where
        # the links outnumber and outweigh 15 seeds (measured: docs/method.md), nor in an extension,
        # whose fixed pairs are the fitted links (hundreds to thousands, as many as it induces).
        svl, svr = backend.anchor_vectors(fixed_left, fixed_right)
        cross = cross + (SEED_WEIGHT - 1.0) * (svl.T @ svr)[None, :, :]
    # Rounded so that summation-order noise between backends cannot change the maps.
    maps = np.stack([procrustes_map(c, decimals=CROSS_DECIMALS) for c in cross])
    if cells is not None:
        centroids = cells
    else:
        al, ar = anchors["left_id"], anchors["right_id"]
        _, vec_r = backend.anchor_vectors(al, ar)
        n_cells = max(1, min(block_cells(backend.n_right, FIT_BLOCK_ROWS), len(al) // 4))
        centroids = cell_centroids(vec_r, n_cells, cells_seed(n_cells, rng))
    keep = 1.0
    if stage == "takeoff" and not extending:
        # VecMap's stochastic dictionary induction: early maps are poor, so the next dictionary is drawn
        # from a random share of the scores; lets the loop leave a wrong fixed point.
        keep = min(1.0, rf.takeoff_keep * 2.0**state.keep_level)
    probes, measured = _search_probes(cfg, state), None
    if extending and state.last_search and cfg.scale.max_probes > cfg.scale.probes:
        # The last round chooses its probes: the fewest whose search recall, measured under this
        # round's map on a sample (veclink_spark.search_recall), reaches the target.
        measured = search_recall(backend, maps[0], centroids, cfg.scale.probes, cfg.scale.max_probes)
        probes = chosen_probes(measured, cfg.scale.probes, cfg.scale.max_probes)
        log.info(
            "last round: search recall %s at scale.probes = %d; searching each row in %d cells "
            "(scale.max_probes %d)",
            measured["recall_at_probes"],
            cfg.scale.probes,
            probes,
            cfg.scale.max_probes,
        )
    votes = backend.refine_votes(
        round_no,
        maps,
        centroids,
        fixed_left,
        fixed_right,
        phase_start,
        keep=keep,
        salt=salt,
        probes=probes,
    )
    if measured is not None:  # recorded in the round's history entry
        votes.stats.update(probes=probes, search_recall=measured)
    return RoundPlan(votes, m, floor, branch, keep=keep, union=stage == "polish" and union)


def _promote(
    backend: Backend,
    cfg: LinkConfig,
    state: RunState,
    plan: RoundPlan,
    round_no: int,
    anchors: dict[str, np.ndarray],
    fixed_left: np.ndarray,
    fixed_right: np.ndarray,
) -> Promotion:
    """Score cells -> Otsu threshold (with the floor) -> integer vote thresholds -> candidates ->
    one-to-one promotion; in take-off rounds also the mixture cut of the promoted links' scores."""
    rf = cfg.refine
    cells, m, floor = plan.votes.cells, plan.views, plan.floor
    out = Promotion(empty_candidates(), [])
    if not len(cells):
        return out
    rv, cv, cnt = cells[:, 0], cells[:, 1], cells[:, 2]
    sc = _score(rv, m)
    if state.phase == "geh":
        uniq, inv = np.unique(sc, return_inverse=True)
        out.threshold = otsu_threshold(uniq, np.bincount(inv, weights=cnt))
    else:
        out.threshold = -math.inf
    sel = (rv >= floor * m) & (sc >= out.threshold)
    if not sel.any():
        return out
    cand = backend.candidates(round_no, int(rv[sel].min()), int(cv[sel].min()))
    out.cand = cand
    csc = _score(cand.round_votes, m)
    ok = (cand.round_votes >= floor * m) & (csc >= out.threshold)
    idx = np.nonzero(ok)[0]
    if state.phase == "geh" or plan.union:
        used_l, used_r = set(anchors["left_id"].tolist()), set(anchors["right_id"].tolist())
    else:
        used_l, used_r = set(fixed_left.tolist()), set(fixed_right.tolist())
    # ties of the round's vote fraction go to the pair with more votes over the phase
    tie = cand.cum_votes[idx]
    keep = greedy_one_to_one(cand.left[idx], cand.right[idx], csc[idx], tie, used_l, used_r)
    out.promoted = idx[keep].tolist()
    if state.phase != "geh" and state.stage == "takeoff" and not plan.init:
        # Computed every take-off round (cheap, on the driver), applied only to the links the take-off
        # ends with (_advance): the cut must not change the churn that decides settling.
        cut = mixture_cut(
            cand.sim[out.promoted], min_separation=rf.mixture_separation, posterior=rf.mixture_posterior
        )
        if cut is not None:
            out.mixture = {
                "threshold": cut.threshold,
                "separation": round(cut.separation, 3),
                "upper_weight": round(cut.upper_weight, 3),
                "applies": cut.applies,
            }
            if cut.applies:
                sims = np.round(cand.sim[out.promoted], CUT_DECIMALS).tolist()
                out.cut = [p for p, v in zip(out.promoted, sims, strict=True) if v >= cut.threshold]
    return out


def _advance(
    cfg: LinkConfig,
    state: RunState,
    plan: RoundPlan,
    promo: Promotion,
    record: RoundRecord,
    round_no: int,
    anchors: dict[str, np.ndarray],
    fixed_only: dict[str, np.ndarray],
    before: dict[str, np.ndarray],
    prob: np.ndarray,
) -> dict[str, np.ndarray]:
    """The one place that decides when a phase or stage ends, and whether the run is done. Returns the
    anchor table the round ends with (the mixture cut replaces the take-off's last links, kept with the
    fixed pairs ``fixed_only``)."""
    rf = cfg.refine
    added, removed = record.added, record.removed
    if state.phase == "geh":
        enough = rf.mode == "procrustes" and len(anchors["left_id"]) >= MIN_ANCHORS
        stalled = added == 0
        if rf.mode == "procrustes" and (enough or stalled) and rf.max_rounds > 0:
            state.phase, state.phase_views, state.phase_rounds = "refine", 0, 0
            log.info("switching to refinement (%s)", "enough anchors" if enough else "the loop stalled")
        elif stalled:
            state.done, state.stop_reason = True, "no new links"
        elif state.phase_rounds >= cfg.bootstrap.max_rounds:
            state.done, state.stop_reason = True, "round cap"
        return anchors
    n_links = record.links
    if state.stage == "polish":
        state.polish_done += 1
        if state.polish_done > 1 and added + removed <= STABLE_FRACTION * max(n_links, 1):
            state.done, state.stop_reason = True, "links stable"
        elif state.polish_done >= rf.polish_rounds:
            state.done, state.stop_reason = True, "polish round cap"
        return anchors
    if plan.keep < 1.0 and not plan.init:
        _adapt_keep(state, plan.votes.stats.get("objective"), rf)
    # Churn of the link set, not its size: before take-off the set drifts (large churn) while its size
    # barely grows (measured on wordnet), after take-off both settle.
    settled = (
        state.phase_rounds > 1 and plan.keep >= 1.0 and added + removed <= SETTLE_FRACTION * max(n_links, 1)
    )
    # The last search ends the extension, whatever its churn against the settling rounds.
    last = state.phase == "extend" and state.last_search
    if not last:
        if not (settled or state.phase_rounds >= _takeoff_rounds(cfg, state)):
            return anchors
        if state.phase == "extend" and _last_search_needed(cfg):
            state.last_search = True
            log.info(
                "extension: the map settled in %d-cell searches; the last round searches each row in "
                "scale.probes = %d cells%s",
                SETTLE_PROBES,
                cfg.scale.probes,
                f" or more, up to scale.max_probes = {cfg.scale.max_probes}"
                if cfg.scale.max_probes > cfg.scale.probes
                else "",
            )
            return anchors
    mixture: dict[str, Any] = record.mixture or {}  # set whenever promo.cut is
    if state.phase == "extend" and cfg.links.final_match:
        # A large run's links are cut after the rounds, where their estimated F1 peaks
        # (veclink_spark.trust.f1_cut), not at the mixture threshold.
        log.info(
            "the extension keeps its last round's %d links; they are cut where their estimated F1 peaks",
            n_links,
        )
    elif promo.cut is not None:
        state.cut_round = round_no
        # The take-off's last links, cut at the mixture threshold of their similarities: the lower
        # component is mostly one-side-only objects' best matches (docs/method.md).
        anchors = _append(fixed_only, promo.cand, promo.cut, round_no, state.phase_views, prob, old=before)
        record.links = len(promo.cut)
        log.info(
            "mixture cut at similarity %.4f (separation %.2f): %d of %d take-off links kept",
            mixture["threshold"],
            mixture["separation"],
            record.links,
            n_links,
        )
    # The polish vote is the precision filter where the mixture cut is not (its components were not
    # separated, or it is off); after a cut it is optional (polish_after_cut). No bagged polish in an
    # extension (docs/method.md, "The extension").
    polish = state.phase == "refine" and rf.polish_rounds > 0 and (promo.cut is None or rf.polish_after_cut)
    if polish and promo.cut is not None and mixture["separation"] >= rf.union_max_separation:
        # A very clean cut (docs/method.md, "A clean cut ends the run"): few right links lie under it,
        # so a union polish would mostly add one-side-only near-duplicates.
        polish = False
        log.info(
            "the cut is clean (separation %.2f >= advanced.refine.union_max_separation %g): no union "
            "polish, the run ends with the cut links",
            mixture["separation"],
            rf.union_max_separation,
        )
    if not polish:
        reason = "last search" if last else "links stable" if settled else "refine round cap"
        state.done, state.stop_reason = True, reason
        return anchors
    state.stage, state.polish_done = "polish", 0
    log.info(
        "refinement settled after %d rounds (%d proposals): polishing with %d bagged maps%s",
        state.phase_rounds,
        record.candidates,
        POLISH_MAPS,
        (
            f" fitted on bags of the cut links; pairs {UNION_VOTE_FRACTION:.0%} of them agree on join "
            "the cut links"
            if promo.cut is not None
            else ""
        ),
    )
    return anchors


def _churn(
    before: dict[str, np.ndarray], after: dict[str, np.ndarray], fixed: set[tuple[Any, Any]]
) -> tuple[int, int]:
    """(added, removed): links (pairs not ``fixed``) in ``after`` and not in ``before``, and the other
    way."""

    def links(a: dict[str, np.ndarray]) -> set[tuple[Any, Any]]:
        return set(zip(a["left_id"].tolist(), a["right_id"].tolist(), strict=True)) - fixed

    old, new = links(before), links(after)
    return len(new - old), len(old - new)


def _append(
    base: dict[str, np.ndarray],
    cand: Candidates,
    promoted: list[int],
    round_no: int,
    n_views: int,
    prob: np.ndarray,
    old: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Anchor table = ``base`` + promoted candidates (refine: a re-derived link keeps its first round)."""
    first_round: dict[tuple, int] = {}
    if old is not None:
        for lft, rgt, rnd, s in zip(
            old["left_id"].tolist(),
            old["right_id"].tolist(),
            old["round"].tolist(),
            old["is_seed"].tolist(),
            strict=False,
        ):
            if not s:
                first_round[(lft, rgt)] = rnd
    out = {k: list(v) for k, v in base.items()}
    for i in promoted:
        key = (
            cand.left[i].item() if hasattr(cand.left[i], "item") else cand.left[i],
            cand.right[i].item() if hasattr(cand.right[i], "item") else cand.right[i],
        )
        out["left_id"].append(cand.left[i])
        out["right_id"].append(cand.right[i])
        out["round"].append(first_round.get(key, round_no))
        out["is_seed"].append(False)
        out["votes"].append(int(cand.cum_votes[i]))
        out["views"].append(int(n_views))
        out["probability"].append(float(prob[i]))
        out["similarity"].append(float(cand.sim[i]))
    return _anchor_table(
        out["left_id"],
        out["right_id"],
        out["round"],
        out["is_seed"],
        out["votes"],
        out["views"],
        out["probability"],
        out["similarity"],
    )


def _adapt_keep(state: RunState, objective: float | None, rf: RefineConfig) -> None:
    """The kept share's schedule (VecMap's rule): count the rounds since the take-off objective last rose
    by :data:`KEEP_MIN_GAIN` above its best; double the kept share after ``keep_patience`` of them, or after
    ``keep_max_level_rounds`` rounds at one share. The counters live in the run state (resumable)."""
    state.level_rounds += 1
    best = state.objective_best
    if objective is not None and (best is None or objective >= best + KEEP_MIN_GAIN):
        state.objective_best, state.rounds_since_gain = objective, 0
    else:
        state.rounds_since_gain += 1
    if state.rounds_since_gain >= rf.keep_patience or state.level_rounds >= rf.keep_max_level_rounds:
        state.keep_level += 1
        log.info(
            "take-off: kept share doubles to %g after %d rounds (objective %s, best %s)",
            min(1.0, rf.takeoff_keep * 2.0**state.keep_level),
            state.level_rounds,
            objective,
            state.objective_best,
        )
        state.level_rounds, state.rounds_since_gain = 0, 0


def cells_seed(n_cells: int, rng: np.random.Generator) -> int:
    """The k-means seed of a round's blocking cells (drawn only when there is more than one cell, so a
    one-cell round leaves the round's generator untouched)."""
    return int(rng.integers(0, 2**31 - 1)) if n_cells > 1 else 0
