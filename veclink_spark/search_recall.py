"""How much of what the map can link the last full-table round's search could reach: its recall, and
how many cells that round searches.

An extension's last round searches each row in its ``scale.probes`` nearest cells (k-means cells of the
right table), so a pair whose two rows share none of them is never linked, however good the map. How
many pairs that leaves out is measured without labels, as an IVF index's recall is measured against
exact search: a hash sample of :data:`SAMPLE_ROWS` left rows; each row's exact nearest right row under
the model's map (one pass over the right table), and that row's exact nearest left row (one pass over
the left table); the pairs that are mutual are the pairs the round looks for (a link is a mutual
nearest neighbour), and each one needs the fewest probes at which its two rows share a cell
(:func:`veclink_spark.kernels.search.probes_needed`). The share that needs at most p probes is the
search's recall at p.

Measured on WordNet beyond the fit sample (``jobs/link.py`` with the defaults, 2,000 sampled rows):
MiniLM-L6 int8 against e5-small q4, alpha 0.3, 76,478 rows a side, 889 mutual pairs: recall 0.907 at
3 probes, 0.954 at 4, 0.974 at 5, 0.998 at 8 (8.6 s of a 350 s run); the runs with 3, 5 and 8 probes
measure F1 0.735, 0.790 and 0.806 (ceiling 0.802). Same family (MiniLM-L6 against L3, alpha 0.15,
67,654 rows a side, 799 mutual pairs): 0.983 at 3 probes, where 8 gave F1 0.828 against 0.816. Below
:data:`RECALL_TARGET` the summary advises the probes that reach it.

The last round measures it under its own map before it searches, and searches the fewest probes from
``scale.probes`` up to ``scale.max_probes`` that reach :data:`RECALL_TARGET` (:func:`chosen_probes`,
called by :func:`veclink_spark.engine._refine_round`); the summary then reads that measurement
(:func:`chosen_recall`) instead of measuring again (67.5 s in process at a million rows a side). With
the defaults, WordNet MiniLM-L6 / e5 measured 0.896 at 3 probes under that round's map and searched 6:
F1 0.799 (P 0.852, R 0.752) against 0.735 with 3; MiniLM-L6 / L3 at alpha 0.15 measured 0.975 and
kept 3 (the same links).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .backends.base import Backend
from .kernels.centre import normalise_rows, pairwise_distances
from .kernels.search import probes_needed
from .kernels.signatures import nearest_keys

log = logging.getLogger(__name__)

#: Left rows sampled (by id hash). About 40 % of them form a mutual pair on the WordNet runs above: a
#: recall's standard error of about 0.01.
SAMPLE_ROWS = 2000

#: Probes the recall is reported for: 1 to this (to ``scale.probes`` or ``scale.max_probes`` when more).
REPORT_PROBES = 8

#: Below this recall at ``scale.probes`` the summary advises more probes. Above the 0.95 one might
#: expect because the sample's mutual pairs are easier to reach than the true pairs (on WordNet
#: MiniLM-L6 / e5 with the job's model, 0.907 at 3 probes, 0.954 at 4, 0.974 at 5; the true pairs
#: under the map of the scratch replay 0.861, 0.923, 0.953): 0.97 asks there for 5 under the final
#: map (F1 0.790 with 5 fixed) and for 6 under the last round's (the default run: F1 0.799).
RECALL_TARGET = 0.97


def search_recall(
    backend: Backend, w: np.ndarray, cells: np.ndarray, probes: int, most: int = REPORT_PROBES
) -> dict[str, Any]:
    """The summary's ``search_recall`` of a run whose last round searched ``backend``'s full tables in
    ``probes`` of the k-means ``cells``, under the map ``w`` (left to right, on the backend's unit
    vectors: the model's). Four passes over the tables' rows, of :data:`SAMPLE_ROWS` queries at most.
    The recall is measured up to ``most`` probes (or ``probes``, or :data:`REPORT_PROBES`, when more);
    ``probes_for_target`` is the fewest of them that reach :data:`RECALL_TARGET`."""
    ids, x = backend.left_sample(SAMPLE_ROWS)
    xm = normalise_rows(x @ w)
    partners = backend.nearest_rows("right", xm)
    y = backend.anchor_vectors(ids[:0], partners)[1]  # the sample's own vectors are in hand
    back = backend.nearest_rows("left", normalise_rows(y @ w.T))
    mutual = back == ids
    k = max(REPORT_PROBES, probes, most)
    # each row's cells nearest first, as the round keys them (kernels.signatures._refine_rows)
    need = probes_needed(
        nearest_keys(pairwise_distances(xm[mutual], cells), k),
        nearest_keys(pairwise_distances(y[mutual], cells), k),
    )
    n = int(mutual.sum())
    # None when no sampled row has a mutual nearest neighbour (nothing to measure the search by)
    recall = {p: round(float(np.mean(need <= p)), 4) if n else None for p in range(1, k + 1)}
    enough = [p for p, r in recall.items() if r is not None and r >= RECALL_TARGET]
    out = {
        "probes": probes,
        "sample_rows": len(ids),
        "mutual_pairs": n,
        "recall": {str(p): r for p, r in recall.items()},
        "recall_at_probes": recall[probes],
        "probes_for_target": enough[0] if enough else None,
        "target": RECALL_TARGET,
    }
    log.info(
        "search recall: %s of %d sampled mutual nearest pairs share one of their %d nearest cells",
        out["recall_at_probes"],
        n,
        probes,
    )
    return out


def chosen_probes(recall: dict[str, Any], least: int, most: int) -> int:
    """The probes an adaptive last round searches (``scale.probes`` = ``least`` up to
    ``scale.max_probes`` = ``most``): the fewest from ``least`` whose measured recall reaches
    :data:`RECALL_TARGET`, else ``most``; ``least`` when nothing could be measured."""
    if recall.get("recall_at_probes") is None:
        return least
    at = recall.get("probes_for_target")
    return most if at is None else min(max(at, least), most)


def chosen_recall(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The summary's ``search_recall`` of a run whose last round chose its probes
    (``scale.max_probes``): that round's measurement, read at the probes it chose; None when no round
    chose."""
    last = next((h for h in reversed(history) if "search_recall" in h), None)
    if last is None:
        return None
    measured, probes = last["search_recall"], int(last["probes"])
    at = measured["recall"].get(str(probes))
    return {**measured, "probes": probes, "recall_at_probes": at}


def advice(recall: dict[str, Any]) -> str | None:
    """The summary's advice on ``scale.probes`` from :func:`search_recall`'s figures, or None."""
    at = recall.get("recall_at_probes")
    if at is None or at >= RECALL_TARGET:
        return None
    probes, better = recall["probes"], recall.get("probes_for_target")
    most = max(recall["recall"], key=int)  # the most probes measured
    raise_to = (
        f"{better} probes reach {recall['recall'][str(better)]:.0%}"
        if better is not None
        else f"even {most} probes reach only {recall['recall'][most]:.0%}"
    )
    cells = "nearest cell" if probes == 1 else f"{probes} nearest cells"
    return (
        f"the last full-table round searched each row in its {cells}, and the two rows of only "
        f"{at:.0%} of a sample's mutual nearest pairs share one: links the map finds are missed by "
        f"the search; {raise_to} (set scale.probes, or scale.max_probes to let the last round choose; "
        "a round's block work grows with the square of the probes)"
    )
