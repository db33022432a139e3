"""The in-process API: link two in-memory embedding tables (numpy, pandas, scikit-learn; no Spark).

It runs the run's pipeline (:func:`veclink_spark.pipeline.run`) on a
:class:`veclink_spark.backends.in_process.NumpyBackend`: the same round driver and kernels as the Spark
job, with the executors' work done here on whole arrays. Use it for small tables, for tests, and as the
oracle the Spark job is checked against: on the same input, config and seed both produce the same links.

Example:
    >>> links, summary = link_arrays(left_ids, left_vectors, right_ids, right_vectors,
    ...                              seed_left_ids, seed_right_ids, LinkConfig())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .backends.in_process import NumpyBackend
from .config import LinkConfig
from .errors import ConfigError, InputError
from .model import LinkModel
from .pipeline import run
from .questions import Answers, apply_answers, read_answers
from .trust import asks


def link_arrays(
    left_ids: np.ndarray,
    left: np.ndarray,
    right_ids: np.ndarray,
    right: np.ndarray,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
    cfg: LinkConfig | None = None,
    answers: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Link two in-memory embedding tables. Returns (links, summary).

    ``links`` has columns left_id, right_id, probability, votes, views, round, is_seed (seeds
    included, flagged), precision_estimate (null for seeds); ``summary`` holds the per-round history,
    the take-off diagnosis, the precision estimate and, when the run asks (``links.ask``), its
    ``questions`` (records of question, left_id, right_id, chance_right, precision_estimate, why).
    ``answers``: left_id, right_id, match (yes / no), answers to an earlier run's questions.

    Raises:
        InputError: fewer than two seeds, seeds naming unknown ids, or invalid answers.
        ConfigError: ``scale.fit_on`` is ``executors`` (the Spark job's; here the fit runs in process).
    """
    cfg = cfg or LinkConfig()
    links, summary, _ = _run(left_ids, left, right_ids, right, seed_left, seed_right, cfg, False, answers)
    return links, summary


def fit_arrays(
    left_ids: np.ndarray,
    left: np.ndarray,
    right_ids: np.ndarray,
    right: np.ndarray,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
    cfg: LinkConfig | None = None,
) -> LinkModel:
    """:func:`link_arrays`, returning the fitted :class:`veclink_spark.model.LinkModel` (its ``links``
    the pandas link table, its ``info`` the run's verdict and counts; the whole summary under
    ``info["summary"]``)."""
    _, _, model = _run(left_ids, left, right_ids, right, seed_left, seed_right, cfg or LinkConfig(), fit=True)
    assert model is not None
    return model


def _run(
    left_ids: np.ndarray,
    left: np.ndarray,
    right_ids: np.ndarray,
    right: np.ndarray,
    seed_left: np.ndarray,
    seed_right: np.ndarray,
    cfg: LinkConfig,
    fit: bool,
    answers_table: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, Any], LinkModel | None]:
    if cfg.scale.fit_on == "executors":
        raise ConfigError(
            [
                "scale.fit_on: executors runs the fit on Spark executors: use the Spark job (Linker), or "
                "driver / auto here (the in-process API fits in process)"
            ]
        )
    seed_left, seed_right = np.asarray(seed_left), np.asarray(seed_right)
    answers = Answers.empty() if answers_table is None else read_answers(answers_table, "(answers table)")
    seed_left, seed_right, confirmed = apply_answers(seed_left, seed_right, answers)
    if len(seed_left) < 2:
        raise InputError(f"at least two seed pairs are needed, got {len(seed_left)}")
    missing = set(seed_left.tolist()) - set(np.asarray(left_ids).tolist())
    missing |= set(seed_right.tolist()) - set(np.asarray(right_ids).tolist())
    if missing:
        raise InputError(f"seeds or confirmed answers name ids absent from the tables: {sorted(missing)[:5]}")
    backend = NumpyBackend(left_ids, left, right_ids, right, cfg)  # centres the tables (cfg.vectors.centre)
    out = run(
        backend,
        seed_left,
        seed_right,
        cfg,
        answers,
        confirmed=confirmed,
        means=(backend.left_mean, backend.right_mean),
        with_model=fit,
    )
    links, summary = pd.DataFrame(out.anchors), out.summary
    if asks(summary, cfg):
        summary["questions"] = out.questions.to_dict("records")
    model = out.model
    if model is not None:
        model.info = {
            "verdict": summary["verdict"],
            "n_links": summary["n_links"],
            "n_seeds": summary["n_seeds"],
            "n_left": backend.n_left,
            "n_right": backend.n_right,
            "summary": summary,
        }
        model.links = links
    return links, summary, model
