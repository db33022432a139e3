"""What a finished run's links are worth, and what to ask its user (driver side).

After the rounds, on the rows the run was fitted on (the whole tables when they fit in
``scale.fit_rows``; else the rows nearest the seeds), duplicates left out:

1. the links a user rejected (answers to an earlier run's questions) are dropped;
2. **final matching** (whole tables, ``links.final_match``, rounds' links estimated at precision
   :data:`FINAL_MATCH_MIN_PRECISION` or more): the tables are matched once more under one map fitted
   on the run's links and cut where the estimated F1 peaks
   (:func:`veclink_spark.precision.final_matching`);
3. each link gets ``precision_estimate`` (:mod:`veclink_spark.precision`); ``links.min_precision``
   keeps the links at or above it (seeds always);
4. the questions (:mod:`veclink_spark.questions`) are chosen, to be written when :func:`asks` says so.

Used by both the Spark job (``Linker``) and the in-process API (``link_arrays``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from .config import LinkConfig
from .duplicates import Duplicates, find_duplicates
from .engine import Backend
from .precision import PrecisionEstimate, estimate_precision, final_matching, prefix_precision
from .questions import ASK_BELOW_PRECISION, Answers, choose_questions, drop_rejected

log = logging.getLogger(__name__)

#: A link is trusted (the summary's ``trusted_links``) when its precision_estimate is at least this.
TRUST_PRECISION = 0.9

#: The final matching runs only when the rounds' links are estimated at least this precise. A map
#: fitted on a chance matching makes its own pairs mutual nearest neighbours again, and an estimate of
#: pairs that one map produced cannot tell them from a real matching (random 64-d / 48-d tables: the
#: rounds' 29 links estimated at 0.005, the final matching's 31 at 0.78); the negative control's rounds
#: estimate 0.01.
FINAL_MATCH_MIN_PRECISION = 0.5


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
        lpos = {k: i for i, k in enumerate(self.left_ids.tolist())}
        rpos = {k: i for i, k in enumerate(self.right_ids.tolist())}
        pl = np.array([lpos.get(k, -1) for k in np.asarray(left_ids).tolist()], dtype=np.int64)
        pr = np.array([rpos.get(k, -1) for k in np.asarray(right_ids).tolist()], dtype=np.int64)
        return pl, pr


def fit_rows(backend: Backend, seed_left: np.ndarray, seed_right: np.ndarray, size: int) -> FitRows:
    """The fit sample of ``backend`` (at most ``size`` rows a side), without duplicate rows."""
    lids, lx, rids, rx, whole = backend.fit_tables(seed_left, seed_right, size)
    dl = find_duplicates(lids, lx, np.isin(lids, seed_left))
    dr = find_duplicates(rids, rx, np.isin(rids, seed_right))
    return FitRows(lids[dl.keep], lx[dl.keep], rids[dr.keep], rx[dr.keep], whole, dl, dr, lids, rids)


#: Links outside the fit sample whose vectors come to the driver at a time (bounds driver memory).
OUTSIDE_CHUNK = 50_000

#: What the summary and the log say when links lie outside the fit sample. Their CSLS neighbourhoods
#: are measured in the sample, which lies far from them, so they score too well (measured:
#: benchmarks/estimate_beyond_sample.py, and the 1M-row scale run in benchmarks/scale/REPORT.md).
OUTSIDE_NOTE = (
    "links outside the fit sample are scored against it and their estimate is optimistic (measured: "
    "0.825 estimated against 0.709 at 20,000 clustered rows a side, 0.96 against 0.69 at a million); "
    "read estimated_precision, precision_estimate and trusted_links as upper bounds for such a run, "
    "or raise scale.fit_rows to the table size where the driver can hold it"
)


def link_precision(
    backend: Backend, anchors: dict[str, np.ndarray], rows: FitRows
) -> tuple[PrecisionEstimate, np.ndarray]:
    """Estimated precision of a run's links (:mod:`veclink_spark.precision`), per link in the order of
    ``anchors``, on the fit rows; the links whose rows lie outside them (a run larger than its sample)
    are scored against them, ``OUTSIDE_CHUNK`` at a time. Also returns each link's left row in
    ``rows`` (-1: outside)."""
    seeds = np.asarray(anchors["is_seed"], bool)
    ll, lr = np.asarray(anchors["left_id"]), np.asarray(anchors["right_id"])
    pl, pr = rows.positions(ll, lr)
    inside = (pl >= 0) & (pr >= 0)
    est, scorer = estimate_precision(rows.left, rows.right, pl[inside], pr[inside], seeds[inside])
    lfdr = np.full(len(ll), np.nan)
    score = np.full(len(ll), np.nan)
    lfdr[inside], score[inside] = est.lfdr, est.score
    out = np.nonzero(~inside & ~seeds)[0]
    for lo in range(0, len(out), OUTSIDE_CHUNK):
        at = out[lo : lo + OUTSIDE_CHUNK]
        score[at], lfdr[at] = scorer(*backend.anchor_vectors(ll[at], lr[at]))
    if len(out):
        known = lfdr[np.isfinite(lfdr)]
        est = replace(
            est,
            estimated_precision=float(1.0 - known.mean()),
            estimated_true_links=float((1.0 - known).sum()),
        )
    return replace(est, lfdr=lfdr, score=score, precision=prefix_precision(score, lfdr)), np.where(
        inside, pl, -1
    )


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
    fill = {"round": final_round, "votes": 0, "views": 0, "probability": 0.5}
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
    }
    return links, fm.estimate, facts


def assess_links(
    backend: Backend, anchors: dict[str, np.ndarray], cfg: LinkConfig, answers: Answers | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """The steps of the module doc on a finished run's links (``anchors``: the engine's link arrays).

    Returns (the links, with ``precision_estimate``; the summary's figures; the duplicate rows left out
    (:meth:`FitRows.duplicate_rows`); the questions, written when :func:`asks` says so)."""
    answers = answers or Answers.empty()
    seeds = np.asarray(anchors["is_seed"], bool)
    rows = fit_rows(backend, anchors["left_id"][seeds], anchors["right_id"][seeds], cfg.scale.fit_rows)
    anchors, rejected = drop_rejected(anchors, answers)
    final: dict[str, Any] | None = None
    est, pos = link_precision(backend, anchors, rows)
    rounds_precision = est.estimated_precision
    if cfg.links.final_match and rows.whole and (rounds_precision or 0.0) >= FINAL_MATCH_MIN_PRECISION:
        anchors, est, final = _final_links(anchors, rows)
        final["rounds_estimated_precision"] = round(float(rounds_precision or 0.0), 4)
        anchors, again = drop_rejected(anchors, answers)
        if again:  # the final matching proposed pairs the user rejected: estimate the rest again
            est, pos = link_precision(backend, anchors, rows)
        else:
            pos = rows.positions(anchors["left_id"], anchors["right_id"])[0]
    seeds = np.asarray(anchors["is_seed"], bool)
    links = dict(anchors, precision_estimate=est.precision)
    cand = np.nonzero(~seeds & (pos >= 0) & np.isfinite(est.lfdr))[0]
    picked, why = choose_questions(
        rows.left[pos[cand]],
        rows.left[pos[seeds & (pos >= 0)]],
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
    outside = int(((pos < 0) & ~seeds).sum())  # links scored against the fit sample (OUTSIDE_NOTE)
    facts: dict[str, Any] = {
        "estimated_precision": round(float(1.0 - known.mean()), 4) if len(known) else None,
        "estimated_true_links": round(float((1.0 - known).sum()), 1),
        "trusted_links": int((np.nan_to_num(prec, nan=-1.0) >= TRUST_PRECISION).sum()),
        "estimated_partnerless_rows": est.summary()["estimated_partnerless_rows"],
        "knockout_match_rate": est.summary()["knockout_match_rate"],
        "precision_basis": {
            "rows": "whole tables" if rows.whole else "fit sample",
            "left_rows": len(rows.left_ids),
            "right_rows": len(rows.right_ids),
            "links_scored_against_sample": outside,
            "outside_sample_note": OUTSIDE_NOTE if outside else None,
        },
        "final_matching": final,
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
    if outside:
        log.warning("%d links lie outside the fit sample: %s", outside, OUTSIDE_NOTE)
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


def asks(summary: dict[str, Any], cfg: LinkConfig) -> bool:
    """Whether a finished run writes its questions: ``links.ask`` always, never, or (auto) when it is
    not sure of its links: a stall, or an estimated precision under ``ASK_BELOW_PRECISION``."""
    if cfg.links.ask != "auto":
        return cfg.links.ask == "always"
    est = summary.get("estimated_precision")
    return bool(summary.get("verdict") == "stalled" or est is None or est < ASK_BELOW_PRECISION)
