"""The fit: learn the links on a bounded sample around the seeds.

The rows of each table nearest the seeds, at most ``scale.fit_rows`` a side
(:func:`veclink_spark.kernels.samples.neighbourhood_sample`), go through the whole method
(:func:`veclink_spark.engine.run_rounds`): the published loop, and self-learning refinement where the
loop does not take off. Its cost does not grow with the tables. Its rounds run where ``scale.fit_on``
says (:meth:`veclink_spark.backends.base.Backend.fit_backend`): in the driver's process on a
:class:`veclink_spark.backends.in_process.NumpyBackend`, or (the Spark job) on executors on a
:class:`veclink_spark.backends.spark.SparkBackend` over the sample's rows, one Delta commit per round;
both give the same links. The seed check then names seeds the fit's links doubt; the fit runs again
without them. When the tables hold more rows than the sample, the extension
(:mod:`veclink_spark.extend`) links the full tables next; :mod:`veclink_spark.pipeline` runs both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .backends.base import Backend
from .config import LinkConfig
from .diagnostics import (
    SEED_CHECK_MIN_LINKS,
    SEED_MAX_RANK,
    SEED_MIN_GAP,
    SeedRanks,
    consistency_sample,
    named_seeds,
    seed_list,
    seed_ranks,
    stall_checks,
)
from .engine import run_rounds
from .state import RunResult
from .timing import Phases
from .trust import FitRows, fit_rows

log = logging.getLogger(__name__)


@dataclass
class Fit:
    """What :func:`fit` learned: the fit's result, its sample (``rows.whole``: the whole of both
    tables), and the seeds kept (sorted; without the ones the seed check dropped)."""

    result: RunResult
    rows: FitRows
    seed_left: np.ndarray
    seed_right: np.ndarray


def fit(
    backend: Backend,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
    cfg: LinkConfig,
    state_extra: dict[str, Any] | None,
    protected: np.ndarray,
    phases: Phases,
) -> Fit:
    """Fit on the sample of ``backend``'s tables around the seeds (sorted by (left id, right id)), check
    the seeds under the fit's links and, when some are probably wrong, fit again without them (the
    result's ``state.dropped_seeds`` names them). ``protected``: True for the seeds a user confirmed,
    which the check never drops."""
    result, rows, fitted_on = _fit(backend, seed_left, seed_right, cfg, state_extra, phases, "fit")
    try:
        with phases("seed_check"):
            ranks = _seed_check(result, fitted_on, seed_left, seed_right, protected)
    finally:
        fitted_on.release()
    if ranks is not None:
        dropped = named_seeds(seed_left, seed_right, ranks, SEED_MAX_RANK)
        keep = ~ranks.doubted(SEED_MAX_RANK)
        log.warning(
            "%d of %d seeds are probably wrong (their partner ranks below %d, and another row is "
            "closer by a cosine of more than %.2f, under the map fitted on the fit's links): fitting "
            "again without them: %s",
            len(dropped),
            len(seed_left),
            SEED_MAX_RANK,
            SEED_MIN_GAP,
            seed_list(dropped),
        )
        seed_left, seed_right = seed_left[keep], seed_right[keep]
        with phases("seed_check"):
            result, rows, again = _fit(backend, seed_left, seed_right, cfg, state_extra, Phases(), "refit")
        again.release()
        result.state.dropped_seeds = dropped
    return Fit(result, rows, seed_left, seed_right)


def _fit(
    backend: Backend,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
    cfg: LinkConfig,
    state_extra: dict[str, Any] | None,
    phases: Phases,
    name: str,
) -> tuple[RunResult, FitRows, Backend]:
    """The fit on the sample around the seeds, on the backend ``backend`` gives for it
    (:meth:`~veclink_spark.backends.base.Backend.fit_backend`, ``name`` naming its rounds): (its result,
    the sample, the backend it ran on, to be released)."""
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
    fit_backend = backend.fit_backend(rows.left_ids, rows.left, rows.right_ids, rows.right, name)
    try:
        with phases("fit"):
            fit = run_rounds(fit_backend, seed_left, seed_right, cfg, state_extra)
    except BaseException:
        fit_backend.release()
        raise
    return fit, rows, fit_backend


def _seed_check(
    fit: RunResult,
    backend: Backend,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
    protected: np.ndarray,
) -> SeedRanks | None:
    """Each seed's rank and gap under the map of the fit's links
    (:func:`veclink_spark.diagnostics.seed_ranks`) when some seeds are doubted
    (:meth:`~veclink_spark.diagnostics.SeedRanks.doubted`) and should be dropped; None when none is,
    or the check cannot be made or trusted: fewer than ``SEED_CHECK_MIN_LINKS`` links, or more than
    half the seeds named (then the links, not the seeds, are the likelier fault), or fewer than two
    seeds would be left."""
    links = ~fit.anchors["is_seed"]
    if int(links.sum()) < SEED_CHECK_MIN_LINKS:
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
        (pairs[0][rows], pairs[1][rows]),
    )
    if checks.stalled:
        log.info("seed check skipped: the fit did not take off, so its links cannot judge the seeds")
        return None
    # a pair the user confirmed is never dropped
    ranks = seed_ranks(backend.anchor_vectors(seed_left, seed_right), pairs).trusting(protected)
    bad = np.nonzero(ranks.doubted(SEED_MAX_RANK))[0]
    if not len(bad) or 2 * len(bad) > len(seed_left) or len(seed_left) - len(bad) < 2:
        if len(bad):
            log.warning(
                "seed check inconclusive: %d of %d seeds rank below %d under the fit's map; all kept",
                len(bad),
                len(seed_left),
                SEED_MAX_RANK,
            )
        return None
    return ranks
