"""Did the run take off? The evidence and the advice that go into the run summary.

Runs on the driver, on small aggregates: the per-round history, the final link table (bounded by the
overlap) and the seed vectors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .backends.base import Backend
from .config import LinkConfig
from .kernels.centre import normalise_rows
from .kernels.maps import procrustes_map, seed_consistency
from .search_recall import advice as search_advice
from .state import RunState

log = logging.getLogger(__name__)

#: Answers, all no, after which a stalled run stops pointing to its questions (one round of them).
NO_YES_AFTER = 15


#: Links whose vectors are used for the link-consistency check (a deterministic sample).
CONSISTENCY_SAMPLE = 1000

# When a run counts as "did not take off" (the verdict; docs/reliability.md).
#: A run that links fewer than this share of the smaller table (beyond the seeds) stalled.
MIN_LINK_FRACTION = 0.02
#: A run whose polish round keeps less than this share of the take-off links stalled (a real matching
#: keeps most of them: 65 % on Debian mpnet / MiniLM-L6; stalled runs kept 0-12 %).
MIN_POLISH_RETENTION = 0.3
#: A run whose last take-off round changed more than this share of its links did not settle: stalled,
#: unless that round was one of an extension's settling rounds and the links keep distances
#: (:data:`MIN_LINK_CONSISTENCY`): a map still converging over the full tables, not a chance matching
#: (measured: three million rows a side, 29 % churn in the fourth settling round, links keeping
#: distances at Spearman 0.95 and measuring P 0.758). Such a run took off, and says so in its advice.
MAX_FINAL_CHURN = 0.25
#: A run whose links' distance consistency (Spearman correlation of link-to-link distances across the
#: two spaces, on a sample of the links) is below this stalled: a chance matching does not preserve
#: geometry (measured: 0.22-0.26 on chance matchings, 0.46-0.64 on runs that took off).
MIN_LINK_CONSISTENCY = 0.35
#: A run whose links are estimated (``estimated_precision``, :mod:`veclink_spark.precision`) at less
#: than this stalled, whatever its rounds looked like: most of its links are estimated wrong (measured:
#: the negative control's WordNet GloVe / mpnet cell settled, kept its polish and said "took off" with
#: links estimated at 0.015, measured 0.163; runs that took off estimate 0.67-0.95, stalled ones
#: 0.00-0.24, over the trust benchmark's grid and the large runs).
MIN_ESTIMATED_PRECISION = 0.3
#: A stalled run also warns when the Spearman correlation of seed-to-seed distances across the two
#: spaces is below this.
MIN_SEED_CONSISTENCY = 0.3
#: Seed check: a seed whose partner ranks below this (either direction) among the rows of the fit's
#: links, under the map fitted on those links, and is :data:`SEED_MIN_GAP` away, is dropped and the fit
#: runs again without it (benchmarks/wrong_seeds/SEED_CHECK.md).
SEED_MAX_RANK = 5


def consistency_sample(links: pd.DataFrame) -> pd.DataFrame:
    """The non-seed links the link-consistency check uses: the first CONSISTENCY_SAMPLE by id order."""
    got = links[~links["is_seed"].astype(bool)]
    return got.sort_values(["left_id", "right_id"]).head(CONSISTENCY_SAMPLE)


def evidence_vectors(
    backend: Backend, anchors: dict[str, np.ndarray], links: pd.DataFrame
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """What :func:`diagnose` reads from the vectors, small: (the seeds' ids, the seeds' vectors, the
    vectors of the :func:`consistency_sample` of ``links``), each as a (left, right) pair."""
    seed_ids = (anchors["left_id"][anchors["is_seed"]], anchors["right_id"][anchors["is_seed"]])
    sample = consistency_sample(links)
    link_vectors = backend.anchor_vectors(sample["left_id"].to_numpy(), sample["right_id"].to_numpy())
    return seed_ids, backend.anchor_vectors(*seed_ids), link_vectors


#: Fewest sampled links the seed check fits its map on (fewer: the check is not made).
SEED_CHECK_MIN_LINKS = 20


def _plain(v: Any) -> Any:
    """A numpy scalar id as the Python int or str JSON writes."""
    return v.item() if isinstance(v, np.generic) else v


#: A seed is named "probably wrong" only when, under the map fitted on the links, some other row is
#: closer to it than its own partner by more than this cosine (the worse of the two directions), as
#: well as its partner ranking below :data:`SEED_MAX_RANK`. A rank alone names right seeds in
#: dense parts of a table (a right WordNet e5 / MiniLM-L3 seed ranked 26 among near-identical glosses).
#: Measured over the maps of 13 grid cells' links (benchmarks/wrong_seeds/SEED_CHECK.md): right seeds
#: have gaps up to 0.113, wrong pairs from 0.158; rank > 5 alone named 4 of 195 right seeds, this rule
#: none, and both missed no wrong pair of 3,640.
SEED_MIN_GAP = 0.15


@dataclass(frozen=True)
class SeedRanks:
    """Each seed's partner under a map that never saw it (:func:`seed_ranks`): ``rank`` (1 = best) and
    ``gap`` (the best other cosine minus the partner's, <= 0 when the partner is first), each the worse
    of the two directions."""

    rank: np.ndarray
    gap: np.ndarray

    def doubted(self, max_rank: int) -> np.ndarray:
        """The seeds named probably wrong: partner ranked below ``max_rank`` and ``SEED_MIN_GAP`` away."""
        return (self.rank > max_rank) & (self.gap > SEED_MIN_GAP)

    def trusting(self, protected: np.ndarray) -> SeedRanks:
        """These ranks with the ``protected`` seeds (a user confirmed them) put first."""
        rank, gap = self.rank.copy(), self.gap.copy()
        rank[protected] = np.minimum(rank[protected], 1)
        gap[protected] = np.minimum(gap[protected], 0.0)
        return SeedRanks(rank, gap)


def named_seeds(
    seed_left: np.ndarray, seed_right: np.ndarray, ranks: SeedRanks, max_rank: int
) -> list[dict[str, Any]]:
    """The seeds :meth:`SeedRanks.doubted` names, as the summary lists them: left_id, right_id, rank,
    gap."""
    return [
        {
            "left_id": _plain(seed_left[i]),
            "right_id": _plain(seed_right[i]),
            "rank": int(ranks.rank[i]),
            "gap": round(float(ranks.gap[i]), 4),
        }
        for i in np.nonzero(ranks.doubted(max_rank))[0]
    ]


def seed_list(seeds: list[dict[str, Any]]) -> str:
    """The first ten of ``seeds`` as '(left, right), ...' for a log line."""
    return ", ".join(f"({d['left_id']}, {d['right_id']})" for d in seeds[:10])


def seed_ranks(
    seed_vectors: tuple[np.ndarray, np.ndarray], link_vectors: tuple[np.ndarray, np.ndarray]
) -> SeedRanks:
    """Each seed's rank and gap under a map that never saw it: the orthogonal map fitted on the links'
    vectors (no seed among them) sends the seed's left vector among the links' right vectors plus the
    seeds' right vectors, and the seed's right vector back among the left ones; the rank (1 = best) of
    the seed's own partner and how much closer the best other row is, the worse of the two directions.
    A right seed ranks 1 or close under a map that took off, or has near-equal neighbours; a wrong one
    (two unrelated rows) lands anywhere, far from the best."""
    sl, sr = (np.asarray(v, dtype=np.float64) for v in seed_vectors)
    ll, lr = (np.asarray(v, dtype=np.float64) for v in link_vectors)
    w = procrustes_map(ll.T @ lr)
    fwd = normalise_rows(sl @ w) @ np.vstack([lr, sr]).T
    back = normalise_rows(sr @ w.T) @ np.vstack([ll, sl]).T
    own = np.arange(len(sl)) + len(lr)
    rows = np.arange(len(sl))
    ranks, gaps = [], []
    for sims in (fwd, back):
        mine = sims[rows, own]
        ranks.append((sims > mine[:, None]).sum(axis=1) + 1)
        others = sims.copy()
        others[rows, own] = -np.inf
        gaps.append(others.max(axis=1) - mine if others.shape[1] > 1 else np.zeros(len(sl)))
    return SeedRanks(np.maximum(*ranks), np.maximum(*gaps))


@dataclass(frozen=True)
class StallChecks:
    """The checks behind the verdict (:func:`stall_checks`)."""

    smaller: int
    needed: float
    link_consistency: float
    churn: float
    retention: float
    last: dict[str, Any] | None
    unsettled: bool
    unstable: bool
    incoherent: bool
    few: bool
    #: The churn was above :data:`MAX_FINAL_CHURN` in an extension's settling round whose links keep
    #: distances: not a stall (a map still converging over the full tables).
    converging: bool

    @property
    def stalled(self) -> bool:
        return self.few or self.unsettled or self.unstable or self.incoherent


def stall_checks(
    history: list[dict[str, Any]],
    n_links: int,
    n_seeds: int,
    n_left: int,
    n_right: int,
    link_vectors: tuple[np.ndarray, np.ndarray] | None,
) -> StallChecks:
    """Whether a run stalled, and why (see :func:`diagnose`): too few links, an unsettled link set,
    a polish that kept few links, or links that do not keep distances. Also used by the fit's seed
    check, which trusts a fit's links only when the fit took off."""
    smaller = min(n_left, n_right)
    needed = MIN_LINK_FRACTION * smaller
    link_consistency = float("nan")
    if link_vectors is not None and len(link_vectors[0]) >= 3:
        link_consistency = seed_consistency(link_vectors[0], link_vectors[1])
    churn = float("nan")
    # The churn of the last self-learning (take-off) round: polish rounds drop links by design, and an
    # extension's last search proposes in more cells than the rounds that settled its map.
    takeoff = [
        h
        for h in history
        if h.get("phase") in ("refine", "extend")
        and not any(s in str(h.get("views_branch")) for s in ("polish", "last-search"))
    ]
    last = takeoff[-1] if takeoff else None
    if last is not None:
        churn = (last.get("added", 0) + last.get("removed", 0)) / max(int(last.get("links", 0)), 1)
    churned = n_links >= needed and np.isfinite(churn) and churn > MAX_FINAL_CHURN
    converging = (
        churned
        and last is not None
        and last.get("phase") == "extend"
        and np.isfinite(link_consistency)
        and link_consistency >= MIN_LINK_CONSISTENCY
    )
    unsettled = churned and not converging
    # Polish retention: the share of the take-off links that every bagged map agrees on. A real matching
    # keeps most of them (measured: 65 % on Debian mpnet/MiniLM-L6); a matching that never took off
    # keeps few (0-12 % measured on stalled runs), even when that few is above MIN_LINK_FRACTION.
    retention = float("nan")
    polish = [h for h in history if "polish" in str(h.get("views_branch"))]
    if polish:
        before = max(int(polish[0].get("anchors_before", 0)) - n_seeds, 1)
        retention = int(polish[-1].get("links", 0)) / before
    unstable = n_links >= needed and np.isfinite(retention) and retention < MIN_POLISH_RETENTION
    # Link consistency: where the mixture cut applied (the polish then only adds to the cut links, so its
    # retention is at least 1 and says nothing), the check that catches a settled chance matching
    # (self-learning between unrelated tables can settle; its links do not keep distances).
    incoherent = (
        n_links >= needed and np.isfinite(link_consistency) and link_consistency < MIN_LINK_CONSISTENCY
    )
    return StallChecks(
        smaller,
        needed,
        link_consistency,
        churn,
        retention,
        last,
        bool(unsettled),
        bool(unstable),
        bool(incoherent),
        n_links < needed,
        bool(converging),
    )


def diagnose(
    state: RunState,
    links: pd.DataFrame,
    n_left: int,
    n_right: int,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
    cfg: LinkConfig,
    link_vectors: tuple[np.ndarray, np.ndarray] | None = None,
    seed_ids: tuple[np.ndarray, np.ndarray] | None = None,
    precision: dict[str, Any] | None = None,
    search: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the run summary from the run's final state: history, link counts, seed consistency and
    the take-off verdict.

    A run is *stalled* when it linked fewer than :data:`MIN_LINK_FRACTION` of the smaller table
    beyond the seeds, or when its link set did not settle: more than :data:`MAX_FINAL_CHURN` of
    the links changed in the last take-off refinement round (self-learning can always produce *some* matching,
    even between unrelated tables; such a matching keeps churning, a real one converges).
    ``link_vectors`` (a sample of the links' vectors) gives the link-to-link distance consistency; below
    :data:`MIN_LINK_CONSISTENCY` the run is stalled too (a chance matching can settle), and so it is
    when ``precision`` (the assessment's figures) estimates its links under
    :data:`MIN_ESTIMATED_PRECISION`. The
    summary then says so with the evidence (seed-to-seed distance consistency across the spaces, vote
    margins, links per round) and what the user can do. Logged at WARNING.

    ``suspect_seeds`` lists the seeds the fit dropped as probably wrong (``dropped``: true; they are not
    in the links) and, for a run that took off, the seeds it kept that :meth:`SeedRanks.doubted` still
    names under the map of the final links (:func:`seed_ranks`; ``seed_ids``
    are the ids of ``seed_left`` / ``seed_right``, row for row; ``dropped``: false).

    ``search``: the last full-table round's search recall (:func:`veclink_spark.search_recall.search_recall`;
    None when the run had no such round), the summary's ``search_recall``; below its target, the
    advice names the probes that reach it.
    """
    history = state.history
    n_links = int((~links["is_seed"].astype(bool)).sum()) if len(links) else 0
    n_seeds = int(links["is_seed"].astype(bool).sum()) if len(links) else 0
    consistency = seed_consistency(seed_left, seed_right)
    checks = stall_checks(history, n_links, n_seeds, n_left, n_right, link_vectors)
    estimate = None if precision is None else precision.get("estimated_precision")
    # The rounds can look settled where the links are not worth much (a chance matching that held
    # still): the estimate of what the links are worth has the last word.
    worthless = estimate is not None and n_links >= checks.needed and estimate < MIN_ESTIMATED_PRECISION
    stalled, last = checks.stalled or worthless, checks.last
    per_round = [int(h.get("added", 0)) for h in history]
    margins = [
        {
            "round": h["round"],
            "threshold": h.get("threshold"),
            "floor": h.get("floor"),
            "candidates": h.get("candidates"),
            "promoted": h.get("promoted"),
        }
        for h in history
    ]
    advice: list[str] = []
    reasons: list[str] = []
    answered = (precision or {}).get("answers") or {}
    no_yes = answered.get("rejected", 0) >= NO_YES_AFTER and not answered.get("confirmed")
    if stalled and n_links < checks.needed:
        reasons.append(
            f"only {n_links} links beyond the {n_seeds} seeds, fewer than "
            f"{MIN_LINK_FRACTION:.0%} of the smaller table ({checks.smaller} rows)"
        )
    if stalled:
        if checks.unstable:
            reasons.append(
                f"only {checks.retention:.0%} of the take-off links survived the bagged-map check (needed "
                f"{MIN_POLISH_RETENTION:.0%}): the self-learned matching is not stable; "
                "the links kept are the ones every map agrees on (often right, but few), so most of the "
                "overlap was not found"
            )
        if checks.incoherent:
            reasons.append(
                f"the links do not keep distances: link-to-link distances agree poorly across the two "
                f"spaces (Spearman {checks.link_consistency:.2f} < {MIN_LINK_CONSISTENCY}), "
                "as in a chance matching; treat these links as chance matches"
            )
        if checks.unsettled and last is not None:
            reasons.append(
                f"the link set did not settle: the last refinement round added {last.get('added', 0)} and "
                f"removed {last.get('removed', 0)} of its {last.get('links', 0)} links (a churn of "
                f"{checks.churn:.0%}, more than {MAX_FINAL_CHURN:.0%}), as happens when "
                "self-learning matches unrelated tables; treat these links as chance matches"
            )
        if worthless and precision is not None and precision.get("estimate_is_lower_bound"):
            reasons.append(
                f"the links are estimated {estimate:.0%} right (under {MIN_ESTIMATED_PRECISION:.0%}), and "
                "that is a floor: the run found too little of the overlap for the estimate to tell rows "
                "with a partner from rows without one (every row of a side counted without one), so it "
                "cannot tell a few right links from none; "
                + (
                    "none of the answered questions was right"
                    if no_yes
                    else "answer the run's questions to find out"
                )
            )
        elif worthless:
            reasons.append(
                f"the links are estimated {estimate:.0%} right (under {MIN_ESTIMATED_PRECISION:.0%}): "
                "most of them are estimated wrong; treat them as chance matches"
            )
        if np.isfinite(consistency) and consistency < MIN_SEED_CONSISTENCY:
            reasons.append(
                f"seed-to-seed distances agree poorly across the two spaces (Spearman "
                f"{consistency:.2f} < {MIN_SEED_CONSISTENCY}): local isometry may "
                "not hold for this encoder pair, or some seeds are wrong"
            )
        if history and all(h.get("promoted", 0) == 0 for h in history[-1:]):
            reasons.append("the last round promoted nothing: no candidate reached the vote threshold")
        if no_yes:
            # a question is one of the run's links: after such a stall more of them will not get a yes
            # (WordNet e5 / MiniLM-L3 alpha 0.15 in the trust benchmark: 0 of 45; 15 known pairs given
            # as seeds instead reached F1 0.679, and 15 questions answered no with the 4 partners that
            # exist named 0.684; ceiling 0.592)
            advice.append(
                f"none of the {answered['rejected']} pairs answered was right: this run's links are "
                "about as wrong as chance, so yes / no answers will not help; give pairs you know "
                "as seeds instead (15 more, spread over the data), or name the partner of a question's "
                "left row when you answer no (n=ID in notebooks/answer_questions.py)"
            )
        advice += [
            "add seed pairs (30-50 spread over the data help most)",
            "check that the seeds are right and that both tables embed the same kind of objects",
            "raise advanced.views.base_views (more, independent views)",
            "keep advanced.refine.mode: procrustes (it can take off where the published loop stalls)",
        ]
    more_probes = None if search is None else search_advice(search)
    if more_probes:
        advice.append(more_probes)
    if checks.converging and last is not None:
        # No promise that more settling rounds raise recall: where measured (all WordNet glosses,
        # MiniLM-L6 / e5, 117k rows a side, benchmarks/scale/WORDNET.md) scale.max_rounds 10 instead of
        # 4 left the last round with 26,683 true pairs against 26,606; the search's probes (the advice
        # above, from the measured search recall) raised it to 30,421.
        advice.append(
            f"the full-table settling rounds had not settled: the last one changed "
            f"{checks.churn:.0%} of its {last.get('links', 0)} links (links that keep distances, "
            f"Spearman {checks.link_consistency:.2f}: a map still converging, not a chance matching); "
            f"more settling rounds (scale.max_rounds, {cfg.scale.max_rounds} now) barely raised recall "
            "where measured: the last round's search cells (scale.probes) matter more"
        )
    verdict = "stalled" if stalled else "took off"
    # The seeds the fit dropped (veclink_spark.fit), then the ones the final links doubt: where the
    # rounds took off, even if the estimate overrules them (a wrong confirmed answer, which the seed
    # check never drops, can leave a few links mostly wrong; naming it says why).
    suspects: list[dict[str, Any]] = [dict(d, dropped=True) for d in state.dropped_seeds]
    if (
        not checks.stalled
        and seed_ids is not None
        and link_vectors is not None
        and len(link_vectors[0]) >= SEED_CHECK_MIN_LINKS
    ):
        ranks = seed_ranks((seed_left, seed_right), link_vectors)
        named = named_seeds(seed_ids[0], seed_ids[1], ranks, SEED_MAX_RANK)
        doubted = [dict(d, dropped=False) for d in named]
        if doubted:
            log.warning(
                "%d of %d seeds the run kept may be wrong (their partner ranks below %d, and is far from "
                "the best, under the map fitted on the links): %s",
                len(doubted),
                len(ranks.rank),
                SEED_MAX_RANK,
                seed_list(doubted),
            )
        suspects += doubted
    summary = {
        "verdict": verdict,
        "took_off": not stalled,
        # The links whose estimated precision is at least TRUST_PRECISION (assess_links); without an
        # estimate, the links the verdict stands behind: all of them after a take-off, none after a stall.
        "trusted_links": 0 if stalled else n_links,
        "reasons": reasons,
        "advice": advice,
        "n_links": n_links,
        "n_seeds": n_seeds,
        "n_left": int(n_left),
        "n_right": int(n_right),
        "seed_consistency_spearman": None if not np.isfinite(consistency) else round(float(consistency), 4),
        "polish_retention": None if not np.isfinite(checks.retention) else round(float(checks.retention), 4),
        "final_churn": None if not np.isfinite(checks.churn) else round(float(checks.churn), 4),
        "link_consistency_spearman": None
        if not np.isfinite(checks.link_consistency)
        else round(float(checks.link_consistency), 4),
        "suspect_seeds": suspects,
        "search_recall": search,
        "links_per_round": per_round,
        "vote_margins": margins,
        "rounds": len(history),
        "stop_reason": state.stop_reason,
        "history": history,
        "config": cfg.to_dict(),
    }
    if precision is not None:
        summary.update(precision)
    if stalled:
        log.warning("the run did not take off: %s. What to do: %s", "; ".join(reasons), "; ".join(advice))
    else:
        log.info(
            "the run took off: %d links beyond %d seeds in %d rounds (seed consistency %.2f)",
            n_links,
            n_seeds,
            len(history),
            consistency if np.isfinite(consistency) else float("nan"),
        )
        for line in advice:
            log.warning("%s", line)
    return summary
