"""Scoring a run's links against a truth table (evaluation only: a run never sees the truth).

Used by ``jobs/score.py``, by the rounds figure (``plots.precision_recall_by_round``) and by the
benchmarks. Conventions:

* A *seed pair* is a pair given in ``seeds`` or flagged ``is_seed`` in the truth. Seed pairs are removed
  from the links and from the truth before scoring. A link that touches a seed's left or right id but is
  not the seed pair itself stays in the output and counts as wrong (a linker should never emit it).
* Duplicate links (the same (left_id, right_id) twice) count once; a warning is logged.
* precision = correct / links output, recall = correct / non-seed true pairs, F1 = their harmonic mean;
  each is 0.0 when its denominator is 0.

Pairs are accepted as a pandas DataFrame, a pyarrow Table or a dict with columns ``left_id`` and
``right_id`` (plus ``probability`` / ``round`` / ``score`` / ``is_seed`` where used), as a tuple of arrays
``(left_id, right_id[, extra])``, as a list of ``(left_id, right_id)`` pairs, or as an array of shape
(n, 2) (or (n, 3) with the extra column). Ids are integers or strings, as in the linked tables.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from veclink_spark.constants import IS_SEED, LEFT_ID, PROBABILITY, RIGHT_ID, ROUND, SCORE
from veclink_spark.errors import InputError

log = logging.getLogger(__name__)


def _columns(obj: Any, extra: str | None, what: str, extra_required: bool = False) -> dict[str, np.ndarray]:
    """Pull ``left_id``, ``right_id`` (and ``extra`` if present) out of any accepted pair container."""
    out: dict[str, np.ndarray] = {}
    names = [LEFT_ID, RIGHT_ID] + ([extra] if extra else [])
    if isinstance(obj, np.ndarray):
        if obj.ndim != 2 or obj.shape[1] not in (2, len(names)):
            raise InputError(f"{what}: an array of pairs must have shape (n, 2), got {obj.shape}")
        cols: list[Any] = [obj[:, i] for i in range(min(obj.shape[1], len(names)))]
        out = dict(zip(names, cols, strict=False))
    elif isinstance(obj, list):
        arr = np.asarray(obj).reshape(-1, 2) if len(obj) == 0 else np.asarray(obj)
        if arr.ndim != 2 or arr.shape[1] not in (2, len(names)):
            raise InputError(f"{what}: a list must hold (left_id, right_id) pairs; got shape {arr.shape}")
        out = dict(zip(names, [arr[:, i] for i in range(arr.shape[1])], strict=False))
    elif isinstance(obj, tuple):
        if len(obj) < 2:
            raise InputError(
                f"{what}: expected a tuple (left_id, right_id[, {extra}]), got {len(obj)} item(s)"
            )
        out = dict(zip(names, obj, strict=False))  # extra tuple items beyond names are ignored
    else:
        if hasattr(obj, "column_names") and hasattr(obj, "column"):  # pyarrow.Table
            available = list(obj.column_names)
            get = lambda c: obj.column(c).to_numpy()  # noqa: E731
        elif isinstance(obj, (pd.DataFrame, Mapping)):
            available = list(obj.keys())
            get = lambda c: obj[c]  # noqa: E731
        else:
            raise InputError(
                f"{what}: unsupported type {type(obj).__name__}; pass a DataFrame, a pyarrow "
                "Table, a dict of columns, a tuple of arrays or an (n, 2) array"
            )
        missing = [c for c in (LEFT_ID, RIGHT_ID) if c not in available]
        if missing:
            raise InputError(f"{what}: missing column(s) {missing}; found {available}")
        out = {c: get(c) for c in names if c in available}
    if extra_required and extra not in out:
        raise InputError(f"{what}: column '{extra}' is required here")
    arrays = {k: np.asarray(v) for k, v in out.items()}
    n = arrays[LEFT_ID].shape[0]
    bad = [k for k, v in arrays.items() if v.ndim != 1 or v.shape[0] != n]
    if bad:
        raise InputError(f"{what}: column(s) {bad} are not 1-D with the same length as {LEFT_ID} ({n})")
    for k in (LEFT_ID, RIGHT_ID):
        arrays[k] = _ids(arrays[k], f"{what}: column '{k}'")
    return arrays


def _ids(values: np.ndarray, what: str) -> np.ndarray:
    """Integer ids as int64, string ids as an object array of str (the two id types a table may have)."""
    if values.size == 0 or np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64)
    if values.dtype.kind == "U" or (values.dtype == object and all(isinstance(v, str) for v in values)):
        return values.astype(str).astype(object)
    raise InputError(f"{what} must hold integer or string ids, got dtype {values.dtype}")


def _pairs(cols: Mapping[str, np.ndarray]) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([cols[LEFT_ID], cols[RIGHT_ID]])


def _label(links: Mapping[str, np.ndarray], truth: Any, seeds: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Mark each link: kept (first occurrence, not a seed pair) and correct; also count non-seed truth."""
    t = _columns(truth, IS_SEED, "truth")
    s = (
        _columns(seeds, None, "seeds")
        if seeds is not None
        else {LEFT_ID: np.empty(0, np.int64), RIGHT_ID: np.empty(0, np.int64)}
    )
    seed_pairs = _pairs(s)
    truth_pairs = _pairs(t)
    if IS_SEED in t:
        seed_pairs = seed_pairs.union(truth_pairs[t[IS_SEED].astype(bool)])
    truth_pairs = truth_pairs.unique()
    true_nonseed = truth_pairs[~truth_pairs.isin(seed_pairs)]
    link_pairs = _pairs(links)
    first = ~link_pairs.duplicated(keep="first")
    if (~first).any():
        log.warning("%d duplicate link(s) counted once", int((~first).sum()))
    kept = first & ~link_pairs.isin(seed_pairs)
    correct = kept & link_pairs.isin(true_nonseed)
    return kept, correct, int(len(true_nonseed))


def _prf(n_correct: int, n_links: int, n_true: int) -> tuple[float, float, float]:
    precision = n_correct / n_links if n_links else 0.0
    recall = n_correct / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def score_links(links: Any, truth: Any, seeds: Any = None) -> dict[str, float | int]:
    """Precision, recall and F1 of links against the truth, seed pairs excluded from both.

    Args:
        links: the linker's output pairs (left_id, right_id); other columns are ignored.
        truth: every true pair (left_id, right_id), optionally with ``is_seed``.
        seeds: the seed pairs (left_id, right_id); None if the truth's ``is_seed`` flags say it all.

    Returns:
        dict with ``precision``, ``recall``, ``f1`` (fractions in [0, 1]), ``n_links`` (non-seed distinct
        links scored), ``n_correct`` and ``n_true`` (non-seed true pairs, the recall denominator).

    Raises:
        InputError: a container lacks ``left_id`` / ``right_id``, or its ids are neither integers nor
            strings.

    Example:
        >>> score_links(([1, 2], [10, 30]), truth=([1, 2], [10, 20]))["precision"]
        0.5
    """
    cols = _columns(links, None, "links")
    kept, correct, n_true = _label(cols, truth, seeds)
    n_links, n_correct = int(kept.sum()), int(correct.sum())
    p, r, f = _prf(n_correct, n_links, n_true)
    return {
        "precision": p,
        "recall": r,
        "f1": f,
        "n_links": n_links,
        "n_correct": n_correct,
        "n_true": n_true,
    }


def best_threshold(
    links: Any, truth: Any, seeds: Any = None, score_col: str = SCORE
) -> dict[str, float | int | None]:
    """The score threshold that maximises F1, chosen with the truth: a diagnostic ceiling, not a method.

    Keeps the links whose score is >= the threshold; tells how much a perfect cut on the links' own score
    would help (e.g. mutual-NN outputs that also link non-overlapping rows).

    Args:
        links: pairs with a score column (or a tuple (left_id, right_id, score)); higher = more confident.
        truth: every true pair, optionally with ``is_seed``.
        seeds: seed pairs to exclude (None: only the truth's ``is_seed`` flags).
        score_col: name of the score column.

    Returns:
        dict with ``threshold`` (None when there is no link), ``precision``, ``recall``, ``f1``,
        ``n_links``, ``n_correct``, ``n_true`` of the links kept at that threshold.

    Raises:
        InputError: missing columns or NaN scores.
    """
    cols = _columns(links, score_col, "links", extra_required=True)
    score = cols[score_col].astype(np.float64)
    if np.isnan(score).any():
        raise InputError(f"links: column '{score_col}' holds NaN")
    kept, correct, n_true = _label(cols, truth, seeds)
    score, correct = score[kept], correct[kept]
    if score.size == 0:
        return {
            "threshold": None,
            "precision": 0.0,
            "recall": 0.0,
            "f1": 0.0,
            "n_links": 0,
            "n_correct": 0,
            "n_true": n_true,
        }
    order = np.argsort(-score, kind="stable")
    score, correct = score[order], correct[order]
    last_of_tie = np.r_[score[1:] != score[:-1], True]  # a threshold keeps all links of equal score
    n_links = np.arange(1, score.size + 1)[last_of_tie]
    n_correct = np.cumsum(correct)[last_of_tie]
    precision = n_correct / n_links
    recall = n_correct / n_true if n_true else np.zeros_like(precision)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    b = int(np.argmax(f1))
    return {
        "threshold": float(score[last_of_tie][b]),
        "precision": float(precision[b]),
        "recall": float(recall[b]),
        "f1": float(f1[b]),
        "n_links": int(n_links[b]),
        "n_correct": int(n_correct[b]),
        "n_true": n_true,
    }


def reliability(
    links: Any,
    truth: Any,
    seeds: Any = None,
    n_bins: int = 10,
    probability_col: str = PROBABILITY,
) -> list[dict[str, float | int | None]]:
    """Reliability table: do the links' probabilities match their observed precision?

    Args:
        links: pairs with a probability column (or a tuple (left_id, right_id, probability)).
        truth: every true pair, optionally with ``is_seed``.
        seeds: seed pairs to exclude (None: only the truth's ``is_seed`` flags).
        n_bins: number of equal-width bins over [0, 1]; the last bin includes 1.0.
        probability_col: name of the probability column.

    Returns:
        One dict per bin, in order: ``lo``, ``hi``, ``n`` (links in the bin), ``mean_prob`` and
        ``precision`` (observed fraction correct; both None for an empty bin).

    Raises:
        InputError: missing columns, n_bins < 1, or a probability outside [0, 1] or NaN.
    """
    if n_bins < 1:
        raise InputError(f"n_bins must be >= 1, got {n_bins}")
    cols = _columns(links, probability_col, "links", extra_required=True)
    prob = cols[probability_col].astype(np.float64)
    if prob.size and (np.isnan(prob).any() or prob.min() < 0.0 or prob.max() > 1.0):
        raise InputError(f"links: column '{probability_col}' must hold probabilities in [0, 1]")
    kept, correct, _ = _label(cols, truth, seeds)
    prob, correct = prob[kept], correct[kept]
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(prob, edges[1:-1], right=False), 0, n_bins - 1)
    out: list[dict[str, float | int | None]] = []
    for b in range(n_bins):
        m = which == b
        n = int(m.sum())
        out.append(
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "n": n,
                "mean_prob": float(prob[m].mean()) if n else None,
                "precision": float(correct[m].mean()) if n else None,
            }
        )
    return out


def score_by_round(
    links: Any, truth: Any, seeds: Any = None, round_col: str = ROUND
) -> list[dict[str, float | int]]:
    """Cumulative precision / recall / F1 after each round of a bootstrapping linker.

    Args:
        links: pairs with an integer round column (or a tuple (left_id, right_id, round)). A pair that
            appears in several rounds counts in the earliest.
        truth: every true pair, optionally with ``is_seed``.
        seeds: seed pairs to exclude (None: only the truth's ``is_seed`` flags).
        round_col: name of the round column.

    Returns:
        One dict per distinct round, ascending: ``round``, ``n_new`` and ``n_new_correct`` (non-seed links
        first output in that round), then cumulative ``n_links``, ``n_correct``, ``n_true``,
        ``precision``, ``recall``, ``f1``.

    Raises:
        InputError: missing columns.
    """
    cols = _columns(links, round_col, "links", extra_required=True)
    rounds = cols[round_col]
    order = np.argsort(rounds, kind="stable")  # earliest round first so duplicates keep their first round
    cols = {k: v[order] for k, v in cols.items()}
    kept, correct, n_true = _label(cols, truth, seeds)
    rounds = cols[round_col]
    out: list[dict[str, float | int]] = []
    cum_links = cum_correct = 0
    for r in np.unique(rounds):
        m = rounds == r
        n_new, n_new_correct = int((kept & m).sum()), int((correct & m).sum())
        cum_links += n_new
        cum_correct += n_new_correct
        p, rc, f = _prf(cum_correct, cum_links, n_true)
        out.append(
            {
                "round": int(r),
                "n_new": n_new,
                "n_new_correct": n_new_correct,
                "n_links": cum_links,
                "n_correct": cum_correct,
                "n_true": n_true,
                "precision": p,
                "recall": rc,
                "f1": f,
            }
        )
    return out
