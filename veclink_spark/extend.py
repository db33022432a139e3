"""The extension: link the full tables after a fit on a bounded sample (driver side).

When a table has more rows than the fit sample (``scale.fit_rows``), the fit's links
(:mod:`veclink_spark.fit`) are carried to the full tables by the run's ``extend`` phase on the run's
backend (executors for the Spark job): rounds of :func:`veclink_spark.engine.run_rounds` whose fixed
pairs are the fitted links (kept, never revoked; they weigh as much as any induced pair). Each round
fits a map on the dictionary (the fitted links, plus every pair the previous round proposed) and
proposes CSLS mutual nearest neighbours, blocked by :func:`extension_cells` (k-means cells of the right
table fitted once, of about ``scale.block_rows`` rows), so a round is one blocked pass over the tables
plus one commit. While the map settles (its links change by at most 3 %, or for ``scale.max_rounds``
rounds) each row meets the rows of its nearest cell (:data:`veclink_spark.engine.SETTLE_PROBES`); one
last round then searches each row in its ``scale.probes`` nearest cells, and its links end the run,
cut after the rounds where their estimated F1 peaks (:func:`veclink_spark.trust.f1_cut`; with
``links.final_match`` false, at the mixture threshold); no bagged polish (docs/method.md, "The
extension"). The phase reads its settings from the ``scale`` section directly.

:func:`start` commits the phase's first state after the fit (a resumed run never fits again; the state
records the fit in an :class:`~veclink_spark.state.ExtensionState`), and :func:`extend` runs (or
resumes) its rounds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np

from .backends.base import Backend
from .config import LinkConfig
from .engine import block_cells, fixed_rows, run_rounds
from .kernels.blocking import cell_centroids
from .state import ExtensionState, RunResult, RunState

log = logging.getLogger(__name__)


#: Rows of the right table's sample per k-means cell of an extension (the cells are fitted once).
CELL_SAMPLE_ROWS = 32


def extension_cells(backend: Backend, cfg: LinkConfig) -> np.ndarray:
    """The blocking cells of every extension round: k-means centroids of a hash sample of the right
    table (:data:`CELL_SAMPLE_ROWS` rows per cell), fitted once. The cells of the fit's rounds come from
    the anchors' right vectors instead; over full tables that would collect every link's vectors to
    the driver and run k-means on them each round (about 500,000 x 384 at a million rows a side)."""
    n_cells = block_cells(backend.n_right, cfg.scale.block_rows)
    sample = backend.right_sample(min(backend.n_right, n_cells * CELL_SAMPLE_ROWS))
    n_cells = max(1, min(n_cells, len(sample) // 4))
    t0 = time.time()
    # 25 Lloyd iterations, faiss's default for its IVF coarse quantisers: a million-row table has 2,000
    # cells fitted on 64,000 rows, where scikit-learn's 300 would take minutes on the driver.
    cells = cell_centroids(sample, n_cells, cfg.run.seed, max_iter=25)
    log.info("blocking cells: %d from %d sampled right rows, %.1f s", n_cells, len(sample), time.time() - t0)
    return cells


def start(
    backend: Backend, fit: RunResult, state_extra: dict[str, Any] | None
) -> tuple[int, dict[str, np.ndarray], RunState]:
    """Commit the extension's first state on ``backend`` after ``fit``: the fit's last round number, its
    anchors (seeds and links, as they are) and a fresh ``extend`` phase recording the fit; return it, as
    :meth:`~veclink_spark.backends.base.Backend.load_last_round` would."""
    anchors = {k: v.copy() for k, v in fit.anchors.items()}
    # scored again by the extension's rounds, over the full tables (the fit's scores are the sample's)
    anchors["similarity"] = np.full(len(anchors["left_id"]), np.nan)
    # The caller's extras (config digest, input fingerprint) and nothing of the fit's own counters,
    # which belong to the fit's phases.
    state = RunState(
        phase="extend",
        dropped_seeds=fit.state.dropped_seeds,
        extension=ExtensionState(
            fit_rounds=fit.rounds,
            fit_history=fit.state.history,
            fitted_left=anchors["left_id"].tolist(),
            fitted_right=anchors["right_id"].tolist(),
        ),
        extra=dict(state_extra or {}),
    )
    log.info(
        "extend: %d fitted links kept, refinement over the full tables", int((~anchors["is_seed"]).sum())
    )
    backend.save_round(fit.rounds, anchors, state)
    return fit.rounds, anchors, state


def extend(
    backend: Backend,
    last: tuple[int, dict[str, np.ndarray], RunState],
    cfg: LinkConfig,
    state_extra: dict[str, Any] | None = None,
) -> RunResult:
    """Run (or resume, from ``last``: the last committed round of an extension) the extension's rounds
    to their end; returns the anchors (the fitted links scored over the full tables) and the state with
    the fit's history first."""
    extension = last[2].extension
    assert extension is not None  # an extend phase's state always records its fit (written by start)
    fitted_left, fitted_right = np.asarray(extension.fitted_left), np.asarray(extension.fitted_right)
    cells = extension_cells(backend, cfg)
    result = run_rounds(backend, fitted_left, fitted_right, cfg, state_extra, resumed=last, cells=cells)
    anchors = result.anchors
    # The fitted links' scores over the full tables: the last round searched their rows too, and left
    # its pairs out of the candidates only because their ids are taken.
    rows = fixed_rows(anchors, set(zip(extension.fitted_left, extension.fitted_right, strict=True)))
    anchors["similarity"][rows] = backend.proposed_similarity(
        result.rounds, anchors["left_id"][rows], anchors["right_id"][rows]
    )
    state = replace(result.state, history=list(extension.fit_history) + list(result.state.history))
    return RunResult(anchors=anchors, state=state, rounds=result.rounds, cells=cells)
