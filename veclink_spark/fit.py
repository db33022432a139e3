"""Learn on a bounded sample, then link the full tables: how a run scales (driver side).

A run has two steps, the same in the Spark job and in the in-process engine:

1. **Fit** (always in the driver's process, on numpy arrays): the rows of each table nearest the seeds,
   at most ``scale.fit_rows`` a side (:func:`veclink_spark.kernels.neighbourhood_sample`), go through
   the whole method (:func:`veclink_spark.engine.run_rounds` on a
   :class:`veclink_spark.reference.NumpyBackend`): the published loop, and self-learning refinement
   where the loop does not take off. Its cost does not grow with the tables.
2. **Extend** (only when a table has more rows than the sample): refinement rounds over the full tables
   on the run's backend (executors for the Spark job), starting from a map fitted on the fit's links,
   which are kept (never revoked, like the seeds); each round is one blocked nearest-neighbour pass
   over the tables plus one Delta commit. It ends as the refinement does (settled links, the mixture
   cut, the bagged polish).

The fit is committed as the first round of the run before the extension starts, so a resumed run
never fits again; a run whose tables fit in the sample commits its final state once.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from .config import LinkConfig
from .diagnostics import (
    SEED_CHECK_MIN_LINKS,
    SEED_MIN_GAP,
    SeedRanks,
    consistency_sample,
    named_seeds,
    seed_list,
    seed_ranks,
    stall_checks,
)
from .engine import Backend, RunResult, RunState, run_rounds
from .timing import Phases
from .trust import fit_rows

log = logging.getLogger(__name__)


def fit_and_extend(
    backend: Backend,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
    cfg: LinkConfig,
    state_extra: dict[str, Any] | None = None,
    confirmed: np.ndarray | None = None,
    phases: Phases | None = None,
) -> RunResult:
    """Run (or resume) a whole run on ``backend``'s tables. Returns what
    :func:`veclink_spark.engine.run_rounds` returns, with the original seeds flagged and the fit's
    history first. ``confirmed``: True for the seeds a user confirmed (answers to the run's questions),
    which the seed check never drops. ``phases`` times sample, fit, seed check and the full-table
    rounds (:mod:`veclink_spark.timing`)."""
    phases = phases or Phases()
    order = np.lexsort((np.asarray(seed_right), np.asarray(seed_left)))
    seed_left, seed_right = np.asarray(seed_left)[order], np.asarray(seed_right)[order]
    protected = np.zeros(len(order), bool) if confirmed is None else np.asarray(confirmed, bool)[order]
    last = backend.load_last_round()
    if last is None:
        fit, whole, fitted_on = _fit(backend, seed_left, seed_right, cfg, state_extra, phases)
        with phases("seed_check"):
            ranks = _seed_check(fit, fitted_on, seed_left, seed_right, cfg, protected)
        if ranks is not None:
            max_rank = cfg.diagnostics.seed_max_rank
            dropped = named_seeds(seed_left, seed_right, ranks, max_rank)
            keep = ~ranks.doubted(max_rank)
            log.warning(
                "%d of %d seeds are probably wrong (their partner ranks below %d, and another row is "
                "closer by a cosine of more than %.2f, under the map fitted on the fit's links): fitting "
                "again without them: %s",
                len(dropped),
                len(seed_left),
                max_rank,
                SEED_MIN_GAP,
                seed_list(dropped),
            )
            seed_left, seed_right = seed_left[keep], seed_right[keep]
            with phases("seed_check"):
                fit, whole, _ = _fit(backend, seed_left, seed_right, cfg, state_extra, Phases())
            fit.state.dropped_seeds = dropped
        if whole:
            backend.save_round(fit.rounds, fit.anchors, fit.state)
            return fit
        anchors = fit.anchors
        # A fresh refinement state: the caller's extras (config digest, input fingerprint) and nothing of
        # the fit's own counters, which belong to the fit's phases.
        start = RunState(
            phase="refine",
            stage="takeoff",
            keep_level=64,  # the kept share is 1: the fitted links make a good first dictionary
            extend=True,
            rounds_before=fit.rounds,
            dropped_seeds=fit.state.dropped_seeds,
            fit={
                "rounds": fit.rounds,
                "history": fit.state.history,
                "stop_reason": fit.state.stop_reason,
                "links": {k: v.tolist() for k, v in anchors.items()},
            },
            extra=dict(state_extra or {}),
        )
        fixed = {k: v.copy() for k, v in anchors.items()}
        fixed["is_seed"] = np.ones(len(fixed["is_seed"]), dtype=bool)
        log.info(
            "extend: %d fitted links kept, refinement over the full tables", int((~anchors["is_seed"]).sum())
        )
        backend.save_round(fit.rounds, fixed, start)
        last = (fit.rounds, fixed, start)
    state = last[2]
    if state.dropped_seeds:  # a resumed run goes on without the seeds its fit dropped
        drop = {(d["left_id"], d["right_id"]) for d in state.dropped_seeds}
        keep = np.array(
            [(a, b) not in drop for a, b in zip(seed_left.tolist(), seed_right.tolist(), strict=True)]
        )
        seed_left, seed_right = seed_left[keep], seed_right[keep]
    if not state.extend:
        with phases("fit"):
            return run_rounds(backend, seed_left, seed_right, cfg, state_extra, resumed=last)
    anchors = last[1]
    fixed_l, fixed_r = anchors["left_id"][anchors["is_seed"]], anchors["right_id"][anchors["is_seed"]]
    with phases("full_table_rounds"):
        result = run_rounds(backend, fixed_l, fixed_r, extension_config(cfg), state_extra, resumed=last)
    return _merge_fit(result, seed_left, seed_right)


def _fit(
    backend: Backend,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
    cfg: LinkConfig,
    state_extra: dict[str, Any] | None,
    phases: Phases,
) -> tuple[RunResult, bool, Backend]:
    """The fit on the sample around the seeds, in process: (its result, whether the sample is the whole
    of both tables, the in-process backend it ran on)."""
    from .reference import NumpyBackend  # the fit always runs in process

    with phases("sample"):
        rows = fit_rows(backend, seed_left, seed_right, cfg.scale.fit_rows)
    log.info(
        "fit: %d left and %d right rows (%s; duplicates left out: %d left, %d right)",
        len(rows.left_ids),
        len(rows.right_ids),
        "the whole tables" if rows.whole else "the rows nearest the seeds",
        rows.left_duplicates.dropped,
        rows.right_duplicates.dropped,
    )
    fit_backend = NumpyBackend(rows.left_ids, rows.left, rows.right_ids, rows.right, cfg, centred=True)
    with phases("fit"):
        fit = run_rounds(fit_backend, seed_left, seed_right, cfg, state_extra)
    return fit, rows.whole, fit_backend


def _seed_check(
    fit: RunResult,
    backend: Backend,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
    cfg: LinkConfig,
    protected: np.ndarray,
) -> SeedRanks | None:
    """Each seed's rank and gap under the map of the fit's links
    (:func:`veclink_spark.diagnostics.seed_ranks`) when some seeds are doubted
    (:meth:`~veclink_spark.diagnostics.SeedRanks.doubted`) and should be dropped; None when none is,
    or the check cannot be made or trusted: ``diagnostics.seed_max_rank`` 0, fewer than
    ``SEED_CHECK_MIN_LINKS`` links, or more than half the seeds named (then the links, not the seeds,
    are the likelier fault), or fewer than two seeds would be left."""
    max_rank = cfg.diagnostics.seed_max_rank
    links = ~fit.anchors["is_seed"]
    if max_rank == 0 or int(links.sum()) < SEED_CHECK_MIN_LINKS:
        return None
    # A fit that did not take off has mostly wrong links: a map fitted on them says nothing about the
    # seeds (measured: it dropped a right seed of a stalled Debian mpnet / MiniLM-L3 fit at alpha 0.15).
    # The links' vectors are read once: the stall checks use the consistency sample's rows of them.
    pairs = backend.anchor_vectors(fit.anchors["left_id"][links], fit.anchors["right_id"][links])
    sample = consistency_sample(pd.DataFrame(fit.anchors))
    rows = np.searchsorted(np.nonzero(links)[0], sample.index.to_numpy())
    checks = stall_checks(
        fit.state.history,
        int(links.sum()),
        int((~links).sum()),
        backend.n_left,
        backend.n_right,
        cfg,
        (pairs[0][rows], pairs[1][rows]),
    )
    if checks.stalled:
        log.info("seed check skipped: the fit did not take off, so its links cannot judge the seeds")
        return None
    # a pair the user confirmed is never dropped
    ranks = seed_ranks(backend.anchor_vectors(seed_left, seed_right), pairs).trusting(protected)
    bad = np.nonzero(ranks.doubted(max_rank))[0]
    if not len(bad) or 2 * len(bad) > len(seed_left) or len(seed_left) - len(bad) < 2:
        if len(bad):
            log.warning(
                "seed check inconclusive: %d of %d seeds rank below %d under the fit's map; all kept",
                len(bad),
                len(seed_left),
                max_rank,
            )
        return None
    return ranks


def extension_config(cfg: LinkConfig) -> LinkConfig:
    """The refinement of an extension: the fitted links (hundreds to thousands) are the dictionary, so
    they weigh as much as any induced pair (the seed weight exists for 15 seeds against a mostly wrong
    first dictionary); the blocked search has bounded work per row (each row meets the rows of its
    ``scale.probes`` nearest cells of about ``scale.block_rows`` rows each), so a round costs about
    linear time in the rows; at most ``scale.max_rounds`` of them before the mixture cut, which ends the
    extension. No bagged polish: on
    WordNet mpnet / MiniLM-L6 at alpha 0.3 with a 3,000-row fit the union polish took precision from
    0.941 to 0.786 (F1 0.918 -> 0.868), and its 8 maps over the full tables ran the local[*] job out of
    its 4 GiB heap at 10,000 rows a side."""
    sc = cfg.scale
    refine = replace(
        cfg.refine,
        seed_weight=1.0,
        cells=0,
        block_rows=sc.block_rows,
        cell_probes=sc.probes,
        max_rounds=sc.max_rounds,
        polish_rounds=0,
    )
    return replace(cfg, refine=refine)


def _merge_fit(result: RunResult, seed_left: np.ndarray, seed_right: np.ndarray) -> RunResult:
    """The extension's anchors with the fit's links restored (their round, votes and probability) and
    only the original seeds flagged; the fit's history before the extension's."""
    fit = result.state.fit
    assert fit is not None  # an extension's state always carries its fit (written above)
    fitted = {
        (a, b): i
        for i, (a, b) in enumerate(zip(fit["links"]["left_id"], fit["links"]["right_id"], strict=True))
    }
    seeds = set(zip(seed_left.tolist(), seed_right.tolist(), strict=True))
    anchors = {k: v.copy() for k, v in result.anchors.items()}
    for i, (a, b) in enumerate(zip(anchors["left_id"].tolist(), anchors["right_id"].tolist(), strict=True)):
        j = fitted.get((a, b))
        if j is not None:
            for key in ("round", "votes", "views", "probability"):
                anchors[key][i] = fit["links"][key][j]
        anchors["is_seed"][i] = (a, b) in seeds
    state = replace(result.state, history=list(fit["history"]) + list(result.state.history))
    return RunResult(anchors=anchors, state=state, rounds=result.rounds)
