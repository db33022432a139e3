"""The round driver of the method, independent of where the vectors live.

This module runs on the driver only. It owns the loop of ``algorithm.md`` ("The loop"): sample the
round's views, ask a backend for the round's mutual-nearest-neighbour votes, turn them into scores,
pick the Otsu threshold (with a floor), promote one-to-one, decide whether to go on, and hand the
round's state to the backend to persist. Two backends implement the vote computation:
:class:`veclink_spark.spark_backend.SparkBackend` (executors, Delta tables) and
:class:`veclink_spark.reference.NumpyBackend` (in-process numpy). Because both share this driver and
the kernels of :mod:`veclink_spark.kernels`, the Spark job and the reference give the same links.

Phases. ``geh`` rounds are the published loop. When ``refine.mode`` is ``procrustes``, the run switches
to ``refine`` rounds once the anchors reach ``refine.min_anchors`` or a ``geh`` round promotes nothing.
Refine rounds fit orthogonal maps (Procrustes on the dictionary, each seed weighted
``refine.seed_weight``) and propose CSLS mutual nearest neighbours in the mapped space, in two stages
(measurements in ``docs/method.md``):

- ``takeoff``: with ``refine.init`` ``distribution`` its first round (``procrustes/init``) proposes the
  CSLS mutual nearest neighbours of the rows' similarity-distribution descriptors (no map yet); then
  ``refine.takeoff_views`` map(s) fitted on the whole dictionary = every pair the previous round
  proposed (VecMap-style self-learning, with stochastic dictionary induction); ends when the link set
  changes by at most ``refine.settle_fraction`` (once the kept share is 1) or at ``refine.max_rounds``.
  Its last links are then cut at the mixture threshold of their similarities
  (``refine.similarity_threshold`` ``mixture``) when the mixture's components are separated;
- ``polish``: ``refine.polish_rounds`` rounds of ``refine.views`` maps, each fitted on a random
  ``refine.bag_fraction`` of the current links; a link needs ``refine.min_vote_fraction`` of the maps
  (stability under resampling is what separates true pairs from one-sided objects' best matches).
  After a mixture cut (with ``refine.polish_after_cut``) the bags come from the cut links (or the
  take-off's last proposals: ``refine.polish_source``) and the pairs ``refine.union_vote_fraction``
  of the maps agree on are added to the cut links (``refine.polish_merge`` ``union``): a link is kept
  when its score is in the upper component or when it is stable under resampling. A cut whose
  components are separated by at least ``refine.union_max_separation`` ends the run instead (few right
  links lie under a cut that clean).

Refine rounds re-derive the link set each round (earlier refine links can be revoked); seeds are never
revoked.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from . import kernels
from .config import LinkConfig, RefineConfig

log = logging.getLogger(__name__)


@dataclass
class RoundVotes:
    """What a backend reports about one round's votes (small aggregates only).

    ``cells`` is the joint histogram of (round votes, cumulative votes) over the eligible candidate
    pairs (pairs touching no current anchor): an int array of shape (n, 3) with columns
    (round_votes, cumulative_votes, number of pairs).
    """

    n_views: int
    cells: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)
    #: histogram (value rounded to ``kernels.SIM_HIST_DECIMALS``, count) of the eligible pairs' best
    #: similarity in the round (max over the views where the pair was a mutual nearest neighbour)
    sim_hist: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


@dataclass
class Candidates:
    """Candidate pairs brought to the driver for promotion (bounded by the overlap size)."""

    left: np.ndarray
    right: np.ndarray
    round_votes: np.ndarray
    cum_votes: np.ndarray
    sim: np.ndarray


class Backend(Protocol):
    """Where the vectors live. Every method returns small aggregates only."""

    n_left: int
    n_right: int
    dim_left: int
    dim_right: int

    def anchor_vectors(self, left_ids: np.ndarray, right_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors of the given anchors, in the given order."""
        ...

    def geh_votes(
        self,
        round_no: int,
        vec_left: np.ndarray,
        vec_right: np.ndarray,
        views: list[kernels.View],
        exclude_left: np.ndarray,
        exclude_right: np.ndarray,
        phase_start: bool,
    ) -> RoundVotes:
        """Compute the round's view votes, add them to the phase's cumulative votes."""
        ...

    def refine_votes(
        self,
        round_no: int,
        maps: np.ndarray,
        centroids: np.ndarray,
        exclude_left: np.ndarray,
        exclude_right: np.ndarray,
        phase_start: bool,
        keep: float = 1.0,
        salt: int = 0,
    ) -> RoundVotes:
        """Compute the round's bagged-map votes, add them to the phase's cumulative votes.

        ``keep`` < 1: each pair competes for a best match only if ``kernels.keep_mask(.., keep, salt)``
        keeps it (stochastic dictionary induction).
        """
        ...

    def distribution_votes(
        self,
        round_no: int,
        n_cells: int,
        cells_seed: int,
        exclude_left: np.ndarray,
        exclude_right: np.ndarray,
        phase_start: bool,
    ) -> RoundVotes:
        """The 'distribution' initialisation round: CSLS mutual nearest neighbours of the rows'
        :func:`veclink_spark.kernels.distribution_descriptors` (each table's sample: its
        ``refine.init_sample`` rows of smallest :func:`veclink_spark.kernels.sample_keys`), blocked by
        ``n_cells`` k-means cells of the right sample's descriptors (``cells_seed``); one view."""
        ...

    def cross_covariance(
        self,
        prev_round: int | None,
        n_bags: int,
        fraction: float,
        salt: int,
        seed_left: np.ndarray,
        seed_right: np.ndarray,
    ) -> np.ndarray:
        """sum of x_left y_right^T over the dictionary pairs in bag b, for every bag: (n_bags, d1, d2).

        The dictionary is the seeds (in every bag) plus, for ``prev_round`` None, the current non-seed
        anchors, else every eligible pair proposed in round ``prev_round``; bag membership of a non-seed
        pair is :func:`veclink_spark.kernels.bag_flags` with ``fraction`` and ``salt``.
        """
        ...

    def candidates(self, round_no: int, min_round_votes: int, min_cum_votes: int) -> Candidates:
        """Eligible pairs of the round with at least these round and cumulative votes."""
        ...

    def save_round(self, round_no: int, anchors: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        """Persist the round (anchor table and info); the round counts as committed afterwards."""
        ...

    def load_last_round(self) -> tuple[int, dict[str, np.ndarray], dict[str, Any]] | None:
        """The last committed round of this run, or None."""
        ...

    def right_sample(self, size: int) -> np.ndarray:
        """Unit vectors of the right table's ``size`` rows of smallest
        :func:`veclink_spark.kernels.sample_keys` (ties by id), in that order."""
        ...

    def fit_tables(
        self, seed_left: np.ndarray, seed_right: np.ndarray, size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
        """The fit sample (:func:`veclink_spark.kernels.neighbourhood_sample` of each table, at most
        ``size`` rows a side) as (left ids, left unit vectors, right ids, right unit vectors, whether it
        is the whole of both tables), rows sorted by id."""
        ...


def _score(kind: str, rv: np.ndarray, cv: np.ndarray, m: int, n_views: int, a: float, b: float) -> np.ndarray:
    if kind == "round_fraction":
        return rv / max(m, 1)
    if kind == "posterior_mean":
        return (a + cv) / (a + b + n_views)
    return cv.astype(np.float64)


def _anchor_table(
    left: list,
    right: list,
    rounds: list[int],
    seed_flags: list[bool],
    votes: list[int],
    views: list[int],
    prob: list[float],
) -> dict[str, np.ndarray]:
    return {
        "left_id": np.asarray(left),
        "right_id": np.asarray(right),
        "round": np.asarray(rounds, dtype=np.int64),
        "is_seed": np.asarray(seed_flags, dtype=bool),
        "votes": np.asarray(votes, dtype=np.int64),
        "views": np.asarray(views, dtype=np.int64),
        "probability": np.asarray(prob, dtype=np.float64),
    }


def run_rounds(
    backend: Backend,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
    cfg: LinkConfig,
    state_extra: dict[str, Any] | None = None,
    resumed: tuple[int, dict[str, np.ndarray], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the loop to the end. Returns the final anchor table and the run summary.

    The seeds are sorted by (left id, right id) first, so the input row order does not matter. A run
    resumed from a state whose ``extend`` flag is set (written by :mod:`veclink_spark.fit`) is an
    extension: refinement rounds over the full tables that keep the fitted links (its "seeds").
    """
    order = np.lexsort((seed_right, seed_left))
    seed_left, seed_right = np.asarray(seed_left)[order], np.asarray(seed_right)[order]
    n_seeds = len(seed_left)
    d_max = max(backend.dim_left, backend.dim_right)
    ev, bs, rf = cfg.evidence, cfg.bootstrap, cfg.refine
    if resumed is None:
        resumed = backend.load_last_round()  # the caller may have loaded it already
    if resumed is None:
        round_no = 0
        anchors = _anchor_table(
            list(seed_left),
            list(seed_right),
            [0] * n_seeds,
            [True] * n_seeds,
            [0] * n_seeds,
            [0] * n_seeds,
            [1.0] * n_seeds,
        )
        info: dict[str, Any] = {
            "phase": "geh",
            "phase_views": 0,
            "phase_rounds": 0,
            "done": False,
            "stop_reason": None,
            "history": [],
        }
        info.update(state_extra or {})
    else:
        round_no, anchors, info = resumed
        log.info("resuming after committed round %d (phase %s)", round_no, info["phase"])
    if rf.mode == "procrustes" and 0 < rf.max_rounds <= cfg.takeoff_keep_rounds() and not info.get("extend"):
        log.warning(
            "refine.max_rounds (%d) can end the take-off before its kept share (refine.takeoff_keep %g, "
            "keep_schedule %s) reaches 1, and then it cannot settle; raise refine.max_rounds above %d or "
            "set refine.takeoff_keep: 1.0",
            rf.max_rounds,
            rf.takeoff_keep,
            rf.keep_schedule,
            cfg.takeoff_keep_rounds(),
        )

    extension_cells = _extension_cells(backend, cfg) if info.get("extend") else None
    while not info["done"]:
        round_no += 1
        t0 = time.time()
        rng = np.random.default_rng([bs.seed, round_no])
        phase = info["phase"]
        phase_start = info["phase_rounds"] == 0
        al, ar = anchors["left_id"], anchors["right_id"]
        if extension_cells is None:
            vec_l, vec_r = backend.anchor_vectors(al, ar)
        keep_share = 1.0  # share of candidate pairs kept (refine take-off only)
        stage = ""  # refine stage: 'takeoff' or 'polish'
        cut_round = info.get("cut_round")  # the take-off round whose links the mixture cut kept
        union = cut_round is not None and rf.polish_merge == "union"
        if phase == "geh":
            views, branch = kernels.sample_views(
                vec_l,
                vec_r,
                n_seeds,
                d_max,
                sampling=cfg.views.sampling,
                base_views=cfg.views.base_views,
                growth=cfg.views.growth,
                view_fraction=cfg.views.view_fraction,
                min_view_size=cfg.views.min_view_size,
                max_view_size=cfg.views.max_view_size,
                kmeans=cfg.views.kmeans,
                kmeans_overlap=cfg.views.kmeans_overlap,
                bandwidth=cfg.signatures.bandwidth,
                rng=rng,
            )
            votes = backend.geh_votes(round_no, vec_l, vec_r, views, al, ar, phase_start)
            m = len(views)
            floor = bs.min_vote_fraction
        else:
            # Two stages (docs/method.md): 'takeoff' rounds fit one map on the whole dictionary (VecMap-style
            # self-learning; extra bags only cost time while the dictionary is mostly wrong), 'polish' rounds
            # fit rf.views maps on small random shares of it and keep the pairs (nearly) all maps agree on.
            stage = info.get("refine_stage", "takeoff")
            branch = f"procrustes/{stage}"
            salt = bs.seed * 1_000_003 + round_no
            # Take-off: the dictionary is every pair the previous round proposed (VecMap). Polish: the current
            # links (already vote-filtered; the union of the bags' proposals is much noisier, measured).
            prev = round_no - 1 if info["phase_rounds"] > 0 and stage == "takeoff" else None
            if stage == "takeoff":
                m, fraction, floor = rf.takeoff_views, 1.0, 0.0
            else:
                m, fraction, floor = rf.views, rf.bag_fraction, rf.min_vote_fraction
                if cut_round is not None:
                    # After a mixture cut (docs/method.md, "Union of the cut and the polish vote"): the bags
                    # come from the take-off's last proposals (before the cut) or from the cut links.
                    if rf.polish_source == "proposals":
                        prev = cut_round
                    if union:
                        floor = rf.union_vote_fraction
        init_round = (
            phase == "refine"
            and stage == "takeoff"
            and info["phase_rounds"] == 0
            and rf.init == "distribution"
            and not info.get("extend")
        )
        if init_round:
            # The first take-off dictionary from the similarity-distribution descriptors (no map yet): the
            # next round fits its map on these proposals plus the weighted seeds (docs/method.md).
            branch = "procrustes/init"
            n_cells = max(1, min(cfg.refine_cells(backend.n_right), rf.init_sample // 4))
            votes = backend.distribution_votes(
                round_no, n_cells, _cells_seed(n_cells, rng), seed_left, seed_right, phase_start
            )
        elif phase == "refine":
            cross = backend.cross_covariance(prev, m, fraction, salt, seed_left, seed_right)
            if rf.seed_weight != 1.0 and stage == "takeoff":
                # The seeds are the only pairs known to be right: weigh them up against the (early: mostly
                # wrong) induced dictionary; a small (n_seeds x d) product on the driver. Not in polish,
                # where the links outnumber and outweigh 15 seeds (measured: docs/method.md).
                svl, svr = backend.anchor_vectors(seed_left, seed_right)
                cross = cross + (rf.seed_weight - 1.0) * (svl.T @ svr)[None, :, :]
            # Rounded so that summation-order noise between backends cannot change the maps.
            maps = np.stack([kernels.procrustes_map(c, decimals=kernels.CROSS_DECIMALS) for c in cross])
            if extension_cells is not None:
                centroids = extension_cells
            else:
                n_cells = max(1, min(cfg.refine_cells(backend.n_right), len(al) // 4))
                centroids = kernels.cell_centroids(vec_r, n_cells, _cells_seed(n_cells, rng))
            if stage == "takeoff":
                # VecMap's stochastic dictionary induction: early maps are poor, so the next dictionary
                # is drawn from a random share of the scores; lets the loop leave a wrong fixed point.
                if rf.keep_schedule == "fixed":
                    level = info["phase_rounds"] // rf.keep_doubling_rounds
                else:
                    level = info.get("keep_level", 0)
                keep_share = min(1.0, rf.takeoff_keep * 2.0**level)
            votes = backend.refine_votes(
                round_no, maps, centroids, seed_left, seed_right, phase_start, keep=keep_share, salt=salt
            )
        n_views_phase = info["phase_views"] + m

        # Score cells -> Otsu threshold (with the floor) -> integer vote thresholds.
        cells = votes.cells
        threshold = math.inf
        sim_threshold = None
        mixture: dict[str, Any] | None = None
        promoted: list[int] = []
        promoted_cut: list[int] | None = None  # the take-off's links cut by refine.similarity_threshold
        cand = Candidates(np.array([]), np.array([]), np.array([]), np.array([]), np.array([]))
        if len(cells):
            rv, cv, cnt = cells[:, 0], cells[:, 1], cells[:, 2]
            sc = _score(ev.score, rv, cv, m, n_views_phase, ev.prior_alpha, ev.prior_beta)
            floor_ok = rv >= floor * m
            if phase == "geh" and bs.threshold == "otsu":
                uniq, inv = np.unique(sc, return_inverse=True)
                threshold = kernels.otsu_threshold(uniq, np.bincount(inv, weights=cnt))
            else:
                threshold = -math.inf
            sel = floor_ok & (sc >= threshold)
            if sel.any():
                min_rv = int(rv[sel].min())
                min_cv = int(cv[sel].min())
                cand = backend.candidates(round_no, min_rv, min_cv)
                csc = _score(
                    ev.score,
                    cand.round_votes,
                    cand.cum_votes,
                    m,
                    n_views_phase,
                    ev.prior_alpha,
                    ev.prior_beta,
                )
                ok = (cand.round_votes >= floor * m) & (csc >= threshold)
                if phase == "refine" and rf.similarity_threshold == "otsu" and len(votes.sim_hist):
                    sim_threshold = kernels.otsu_threshold(votes.sim_hist[:, 0], votes.sim_hist[:, 1])
                    ok &= np.round(cand.sim, kernels.SIM_HIST_DECIMALS) >= sim_threshold
                idx = np.nonzero(ok)[0]
                if phase == "geh" or (stage == "polish" and union):
                    # GEH adds to its anchors; a union polish adds to the cut links (and the seeds).
                    used_l, used_r = set(al.tolist()), set(ar.tolist())
                else:
                    used_l, used_r = set(seed_left.tolist()), set(seed_right.tolist())
                tie = cand.cum_votes[idx] if ev.score == "round_fraction" else cand.round_votes[idx]
                keep = kernels.greedy_one_to_one(
                    cand.left[idx], cand.right[idx], csc[idx], tie, used_l, used_r
                )
                promoted = idx[keep].tolist()
                if (
                    phase == "refine"
                    and stage == "takeoff"
                    and not init_round
                    and rf.similarity_threshold == "mixture"
                ):
                    # Computed every take-off round (cheap, on the driver), applied only to the links the
                    # take-off ends with (below): the cut must not change the churn that decides settling.
                    cut = kernels.mixture_cut(cand.sim[promoted], min_separation=rf.mixture_separation)
                    if cut is not None:
                        mixture = {
                            "threshold": cut.threshold,
                            "separation": round(cut.separation, 3),
                            "upper_weight": round(cut.upper_weight, 3),
                            "applies": cut.applies,
                        }
                        if cut.applies:
                            sims = np.round(cand.sim[promoted], kernels.CUT_DECIMALS).tolist()
                            promoted_cut = [
                                p for p, v in zip(promoted, sims, strict=True) if v >= cut.threshold
                            ]

        prob = (
            (ev.prior_alpha + cand.cum_votes) / (ev.prior_alpha + ev.prior_beta + n_views_phase)
            if len(cand.cum_votes)
            else np.array([])
        )
        prev_links = set(
            zip(al[~anchors["is_seed"]].tolist(), ar[~anchors["is_seed"]].tolist(), strict=False)
        )
        before = anchors
        seeds_only = {k: v[anchors["is_seed"]] for k, v in anchors.items()}
        if phase == "geh" or (stage == "polish" and union):
            anchors = _append(anchors, cand, promoted, round_no, n_views_phase, prob)
        else:
            anchors = _append(seeds_only, cand, promoted, round_no, n_views_phase, prob, old=before)
        new_links = set(
            zip(
                anchors["left_id"][~anchors["is_seed"]].tolist(),
                anchors["right_id"][~anchors["is_seed"]].tolist(),
                strict=False,
            )
        )
        added = len(new_links - prev_links)
        removed = len(prev_links - new_links)

        stats: dict[str, Any] = {
            "round": round_no,
            "phase": "extend" if info.get("extend") else phase,
            "views_branch": branch,
            "views": m,
            "keep": keep_share,
            "anchors_before": int(len(al)),
            "candidates": int(cells[:, 2].sum()) if len(cells) else 0,
            "threshold": None if not math.isfinite(threshold) else float(threshold),
            "floor": float(floor),
            "sim_threshold": sim_threshold,
            "mixture": mixture,
            "promoted": len(promoted),
            "added": added,
            "removed": removed,
            "links": int((~anchors["is_seed"]).sum()),
            "seconds": round(time.time() - t0, 3),
        }
        stats.update(votes.stats)
        info["history"].append(stats)
        info["phase_views"] = n_views_phase
        info["phase_rounds"] += 1
        log.info(
            "round %d [%s/%s%s] anchors %d, candidates %d, threshold %s, promoted %d (+%d -%d), "
            "links %d, %.1f s",
            round_no,
            phase,
            branch,
            ("" if keep_share >= 1.0 else f", keep {keep_share:g}")
            + ("" if votes.stats.get("objective") is None else f", objective {votes.stats['objective']:.4f}"),
            len(al),
            stats["candidates"],
            "-" if stats["threshold"] is None else f"{stats['threshold']:.3f}",
            len(promoted),
            added,
            removed,
            stats["links"],
            stats["seconds"],
        )

        # Stopping and phase switches.
        if phase == "geh":
            enough = rf.mode == "procrustes" and len(anchors["left_id"]) >= rf.min_anchors
            stalled = added == 0
            if rf.mode == "procrustes" and (enough or stalled) and rf.max_rounds > 0:
                info.update(phase="refine", phase_views=0, phase_rounds=0)
                log.info("switching to refinement (%s)", "enough anchors" if enough else "the loop stalled")
            elif stalled:
                info.update(done=True, stop_reason="no new links")
            elif info["phase_rounds"] >= bs.max_rounds:
                info.update(done=True, stop_reason="round cap")
        else:
            n_links = int((~anchors["is_seed"]).sum())
            n_cand = stats["candidates"]
            stage = info.get("refine_stage", "takeoff")
            if stage == "takeoff" and rf.keep_schedule == "adaptive" and keep_share < 1.0 and not init_round:
                _adapt_keep(info, stats.get("objective"), rf)
            if stage == "takeoff":
                # Churn of the link set, not its size: before take-off the set drifts (large churn) while
                # its size barely grows (measured on wordnet), after take-off both settle.
                settled = (
                    info["phase_rounds"] > 1
                    and keep_share >= 1.0
                    and added + removed <= rf.settle_fraction * max(n_links, 1)
                )
                if settled or info["phase_rounds"] >= rf.max_rounds:
                    if promoted_cut is not None:
                        info["cut_round"] = round_no
                        # The take-off's last links, cut at the mixture threshold of their similarities: the
                        # lower component is mostly one-side-only objects' best matches (docs/method.md).
                        anchors = _append(
                            seeds_only, cand, promoted_cut, round_no, n_views_phase, prob, old=before
                        )
                        stats["links"] = int((~anchors["is_seed"]).sum())
                        log.info(
                            "mixture cut at similarity %.4f (separation %.2f): %d of %d take-off links kept",
                            stats["mixture"]["threshold"],
                            stats["mixture"]["separation"],
                            stats["links"],
                            n_links,
                        )
                    # The polish vote is the precision filter where the mixture cut is not (its components
                    # were not separated, or it is off); after a cut it is optional (polish_after_cut).
                    polish = rf.polish_rounds > 0 and (promoted_cut is None or rf.polish_after_cut)
                    if (
                        polish
                        and promoted_cut is not None
                        and rf.polish_merge == "union"
                        and stats["mixture"]["separation"] >= rf.union_max_separation
                    ):
                        # A very clean cut (docs/method.md, "A clean cut ends the run"): few right links
                        # lie under it, so a union polish would mostly add one-side-only near-duplicates.
                        polish = False
                        log.info(
                            "the cut is clean (separation %.2f >= refine.union_max_separation %g): no union "
                            "polish, the run ends with the cut links",
                            stats["mixture"]["separation"],
                            rf.union_max_separation,
                        )
                    if polish:
                        info.update(refine_stage="polish", refine_polish_rounds=0)
                        log.info(
                            "refinement settled after %d rounds (%d proposals): polishing with %d "
                            "bagged maps%s",
                            info["phase_rounds"],
                            n_cand,
                            rf.views,
                            (
                                " fitted on bags of the "
                                + ("cut links" if rf.polish_source == "links" else "take-off's proposals")
                                + f"; pairs {rf.union_vote_fraction:.0%} of them agree on join the cut links"
                                if promoted_cut is not None and rf.polish_merge == "union"
                                else ""
                            ),
                        )
                    else:
                        info.update(done=True, stop_reason="links stable" if settled else "refine round cap")
            else:
                info["refine_polish_rounds"] = info.get("refine_polish_rounds", 0) + 1
                polished = info["refine_polish_rounds"]
                if polished > 1 and added + removed <= rf.stable_fraction * max(n_links, 1):
                    info.update(done=True, stop_reason="links stable")
                elif polished >= rf.polish_rounds:
                    info.update(done=True, stop_reason="polish round cap")
        cap = bs.max_rounds + rf.max_rounds + rf.polish_rounds + info.get("rounds_before", 0)
        if round_no >= cap and not info["done"]:
            info.update(done=True, stop_reason="round cap")
        backend.save_round(round_no, anchors, info)
    return {"anchors": anchors, "info": info, "rounds": round_no}


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
    return _anchor_table(
        out["left_id"],
        out["right_id"],
        out["round"],
        out["is_seed"],
        out["votes"],
        out["views"],
        out["probability"],
    )


def _adapt_keep(info: dict[str, Any], objective: float | None, rf: RefineConfig) -> None:
    """keep_schedule 'adaptive' (VecMap's rule): count the rounds since the take-off objective last rose
    by ``keep_min_gain`` above its best; double the kept share after ``keep_patience`` of them, or after
    ``keep_max_level_rounds`` rounds at one share. The counters live in the run state (resumable)."""
    info["level_rounds"] = info.get("level_rounds", 0) + 1
    best = info.get("objective_best")
    if objective is not None and (best is None or objective >= best + rf.keep_min_gain):
        info.update(objective_best=objective, rounds_since_gain=0)
    else:
        info["rounds_since_gain"] = info.get("rounds_since_gain", 0) + 1
    if info["rounds_since_gain"] >= rf.keep_patience or info["level_rounds"] >= rf.keep_max_level_rounds:
        level = info.get("keep_level", 0) + 1
        log.info(
            "take-off: kept share doubles to %g after %d rounds (objective %s, best %s)",
            min(1.0, rf.takeoff_keep * 2.0**level),
            info["level_rounds"],
            objective,
            info.get("objective_best"),
        )
        info.update(keep_level=level, level_rounds=0, rounds_since_gain=0)


#: Rows of the right table's sample per k-means cell of an extension (the cells are fitted once).
CELL_SAMPLE_ROWS = 32


def _extension_cells(backend: Backend, cfg: LinkConfig) -> np.ndarray:
    """The blocking cells of every extension round: k-means centroids of a hash sample of the right
    table (:data:`CELL_SAMPLE_ROWS` rows per cell), fitted once. The cells of the fit's rounds come from
    the anchors' right vectors instead; over full tables that would collect every link's vectors to
    the driver and run k-means on them each round (about 500,000 x 384 at a million rows a side)."""
    n_cells = cfg.refine_cells(backend.n_right)
    sample = backend.right_sample(min(backend.n_right, n_cells * CELL_SAMPLE_ROWS))
    n_cells = max(1, min(n_cells, len(sample) // 4))
    t0 = time.time()
    cells = kernels.cell_centroids(sample, n_cells, cfg.bootstrap.seed)
    log.info("extension: %d cells from %d sampled right rows, %.1f s", n_cells, len(sample), time.time() - t0)
    return cells


def _cells_seed(n_cells: int, rng: np.random.Generator) -> int:
    """The k-means seed of a round's blocking cells (drawn only when there is more than one cell, so a
    one-cell round leaves the round's generator untouched)."""
    return int(rng.integers(0, 2**31 - 1)) if n_cells > 1 else 0
