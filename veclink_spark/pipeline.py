"""One run of the method, whatever the backend: fit -> extend -> assess -> model -> diagnose.

Both entry points call :func:`run` with the backend they built on their inputs:
:meth:`veclink_spark.linker.Linker.link` (a :class:`veclink_spark.backends.spark.SparkBackend` over the
tables it read, checked and centred on executors; it writes what :func:`run` returns to Delta) and
:func:`veclink_spark.arrays.link_arrays` (a :class:`veclink_spark.backends.in_process.NumpyBackend`,
which centres the arrays itself). The steps, on the driver:

1. **fit** (:func:`veclink_spark.fit.fit`): the method on a bounded sample around the seeds, with the
   seed check; its rounds run in the driver's process, or on executors (``scale.fit_on``);
2. **extend** (:mod:`veclink_spark.extend`, only when a table has more rows than the sample): the
   run's ``extend`` phase, rounds over the full tables on the run's backend whose fixed pairs are the
   fit's links;
3. **assess** (:func:`veclink_spark.trust.assess_links`): duplicates, the precision estimate, the
   questions to ask;
4. **model** (:func:`veclink_spark.model.fit_model`): the maps and cells that link rows arriving later;
5. **search recall** (:mod:`veclink_spark.search_recall`, only after an extension): how much of what
   the map links the last full-table round's blocked search could reach, measured on a sample (by
   that round, when it chose its probes; else under the model's map, or
   :func:`veclink_spark.model.orthogonal_map` when no model is fitted);
6. **diagnose** (:func:`veclink_spark.diagnostics.diagnose`): the verdict and the run's summary.

The fit is committed as the first round of the run before the extension starts, so a resumed run never
fits again; a run whose tables fit in the sample commits its final state once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import extend as extension
from .backends.base import Backend
from .config import LinkConfig
from .diagnostics import diagnose, evidence_vectors
from .engine import run_rounds
from .fit import fit
from .model import LinkModel, fit_model, orthogonal_map
from .questions import Answers
from .search_recall import chosen_recall, search_recall
from .state import RunResult
from .timing import Phases
from .trust import FitRows, assess_links

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a run produced, before anything is stored.

    Attributes:
        result: the rounds' result (final anchors before assessment, the run state, the last round).
        anchors: the final link table (seeds flagged) with each link's precision estimate.
        summary: the run's diagnosis (:func:`veclink_spark.diagnostics.diagnose`).
        duplicates: the duplicate rows the assessment left out.
        questions: the pairs worth asking a person about (:func:`veclink_spark.trust.assess_links`).
        model: the fitted model (None when not asked for); its ``info`` and ``links`` are the caller's.
    """

    result: RunResult
    anchors: dict[str, np.ndarray]
    summary: dict[str, Any]
    duplicates: pd.DataFrame
    questions: pd.DataFrame
    model: LinkModel | None


def run(
    backend: Backend,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
    cfg: LinkConfig,
    answers: Answers,
    confirmed: np.ndarray | None = None,
    state_extra: dict[str, Any] | None = None,
    phases: Phases | None = None,
    means: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
    with_model: bool = True,
) -> Outcome:
    """Run (or resume) a whole run on ``backend``'s tables (already centred when ``cfg.vectors.centre``;
    ``means``: the tables' mean unit vectors, kept by the model).

    Args:
        backend: where the vectors live (Spark or in process).
        seed_left, seed_right: the seed pairs (answers applied: confirmed pairs included).
        cfg: the run's configuration.
        answers: answers to an earlier run's questions (rejected pairs are never linked).
        confirmed: True for the seeds a user confirmed, which the seed check never drops.
        state_extra: keys every committed state carries (config digest, input fingerprint).
        phases: times each step (:mod:`veclink_spark.timing`).
        with_model: fit the model.
    """
    phases = phases or Phases()
    result, sample = _fit_and_extend(backend, seed_left, seed_right, cfg, state_extra, confirmed, phases)
    with phases("assess"):
        anchors, precision, duplicates, questions = assess_links(
            backend, result.anchors, cfg, answers, sample
        )
        links = pd.DataFrame(anchors)
        seed_ids, (sl, sr), lv = evidence_vectors(backend, anchors, links)
    model = None
    if with_model:
        with phases("model"):
            model = fit_model(backend, cfg, anchors, means[0], means[1], {}, cells=result.cells)
    search = None
    if result.cells is not None:
        # The last round's own measurement when it chose its probes (measured once: at a million
        # rows a side it takes a minute), else one under the final links' map.
        search = chosen_recall(result.state.history)
        if search is None:
            with phases("search_recall"):
                w = model.map if model is not None else orthogonal_map(backend, anchors)
                search = search_recall(backend, w, result.cells, cfg.scale.probes)
        if model is not None:  # rows that arrive later meet as many cells as the last round's rows
            model.probes = int(search["probes"])
    summary = diagnose(
        result.state, links, backend.n_left, backend.n_right, sl, sr, cfg, lv, seed_ids, precision, search
    )
    return Outcome(result, anchors, summary, duplicates, questions, model)


def fit_and_extend(
    backend: Backend,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
    cfg: LinkConfig,
    state_extra: dict[str, Any] | None = None,
    confirmed: np.ndarray | None = None,
    phases: Phases | None = None,
) -> RunResult:
    """The rounds of a run (or of its resumption) on ``backend``'s tables: the fit, then the extension
    when the tables are larger than the fit sample (a resumed ``extend`` phase goes on from its
    committed state, which records the fit). Returns what :func:`veclink_spark.engine.run_rounds`
    returns, with the seeds flagged and the fit's history first. ``phases`` times sample, fit,
    seed check and the full-table rounds."""
    return _fit_and_extend(backend, seed_left, seed_right, cfg, state_extra, confirmed, phases)[0]


def _fit_and_extend(
    backend: Backend,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
    cfg: LinkConfig,
    state_extra: dict[str, Any] | None,
    confirmed: np.ndarray | None,
    phases: Phases | None,
) -> tuple[RunResult, FitRows | None]:
    """:func:`fit_and_extend`, and the fit's sample when this call drew it (None on a resumed run):
    the assessment reuses it rather than read the tables for it again."""
    phases = phases or Phases()
    order = np.lexsort((np.asarray(seed_right), np.asarray(seed_left)))
    seed_left, seed_right = np.asarray(seed_left)[order], np.asarray(seed_right)[order]
    protected = np.zeros(len(order), bool) if confirmed is None else np.asarray(confirmed, bool)[order]
    last = backend.load_last_round()
    sample = None
    if last is None:
        fitted = fit(backend, seed_left, seed_right, cfg, state_extra, protected, phases)
        seed_left, seed_right = fitted.seed_left, fitted.seed_right
        sample = fitted.rows
        if sample.whole:
            backend.save_round(fitted.result.rounds, fitted.result.anchors, fitted.result.state)
            return fitted.result, sample
        last = extension.start(backend, fitted.result, state_extra)
    state = last[2]
    if state.phase == "extend":
        with phases("full_table_rounds"):
            return extension.extend(backend, last, cfg, state_extra), sample
    if state.dropped_seeds:  # a resumed run goes on without the seeds its fit dropped
        drop = {(d["left_id"], d["right_id"]) for d in state.dropped_seeds}
        keep = np.array(
            [(a, b) not in drop for a, b in zip(seed_left.tolist(), seed_right.tolist(), strict=True)]
        )
        seed_left, seed_right = seed_left[keep], seed_right[keep]
    with phases("fit"):
        return run_rounds(backend, seed_left, seed_right, cfg, state_extra, resumed=last), None
