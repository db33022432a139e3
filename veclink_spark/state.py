"""The round driver's records: the state a run persists between rounds and what a round reports.

Plain dataclasses, numpy only, imported by every layer above (the backends, the engine, the extension,
the fit and the pipeline): :class:`RunState` (what each committed round persists as JSON and a resumed
run restarts from, with an extension's :class:`ExtensionState`), :class:`RoundRecord` (one entry of
its history), :class:`RunResult` (what a run of rounds returns), and the round's intermediate records
(:class:`RoundVotes`, :class:`Candidates`, :class:`RoundPlan`, :class:`Promotion`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np


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


@dataclass
class Candidates:
    """Candidate pairs brought to the driver for promotion (bounded by the overlap size)."""

    left: np.ndarray
    right: np.ndarray
    round_votes: np.ndarray
    cum_votes: np.ndarray
    sim: np.ndarray


@dataclass
class ExtensionState:
    """What the extension phase (:mod:`veclink_spark.extend`) keeps of the fit it carries to the full
    tables: the fit's rounds (the extension's rounds are numbered after them) and history, and its links
    (seeds included), the extension's fixed pairs, which its rounds never revoke and restore on resume.
    """

    fit_rounds: int
    fit_history: list[dict[str, Any]]
    fitted_left: list[Any]
    fitted_right: list[Any]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtensionState:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass
class RunState:
    """The driver's state between rounds: what each committed round persists (as JSON, :meth:`to_dict`)
    and what a resumed run restarts from.

    ``phase`` is ``geh`` (the published loop), ``refine`` (both a fit's phases), or ``extend`` (the
    full-table rounds after a fit, :mod:`veclink_spark.extend`, whose fit ``extension`` records); a
    refine phase runs the ``takeoff`` stage, then the ``polish`` stage (``stage``); the extend phase
    runs take-off rounds only. ``extra`` holds the caller's keys (config digest, input fingerprint),
    kept at the top level of the JSON.
    """

    phase: str = "geh"
    stage: str = "takeoff"
    phase_views: int = 0  # views (trials) so far in the phase: the posterior's n
    phase_rounds: int = 0
    # The take-off's kept share of candidate pairs is takeoff_keep x 2^keep_level (engine._adapt_keep).
    keep_level: int = 0
    level_rounds: int = 0
    rounds_since_gain: int = 0
    objective_best: float | None = None
    cut_round: int | None = None  # the take-off round whose links the mixture cut kept
    polish_done: int = 0  # polish rounds run
    # The extension's last round, searched in scale.probes cells (its earlier rounds settle the map in
    # one: engine.SETTLE_PROBES).
    last_search: bool = False
    done: bool = False
    stop_reason: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # one RoundRecord.to_dict() per round
    extension: ExtensionState | None = None  # set in the extend phase
    # Seeds the fit's check dropped as probably wrong (veclink_spark.fit): left_id, right_id, rank.
    dropped_seeds: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out["history"] = [dict(h) for h in self.history]
        out["extension"] = None if self.extension is None else asdict(self.extension)
        return {**self.extra, **out}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        if known.get("extension") is not None:
            known["extension"] = ExtensionState.from_dict(known["extension"])
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})


@dataclass
class RoundRecord:
    """What one round did: an entry of the run's history (:attr:`RunState.history`, persisted with each
    commit and returned in the summary), with the backend's own statistics (``backend``: block sizes,
    mutual-nearest-neighbour pairs, the take-off objective) kept alongside."""

    round: int
    phase: str  # geh, refine, or extend (a full-table round after the fit)
    views_branch: str
    views: int
    keep: float
    anchors_before: int
    candidates: int
    threshold: float | None
    floor: float
    mixture: dict[str, Any] | None
    promoted: int
    added: int
    removed: int
    links: int
    seconds: float
    backend: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "backend"}
        return {**out, **self.backend}


@dataclass
class RunResult:
    """What :func:`run_rounds` returns: the final anchor table (seeds and links), the state, the last
    round's number."""

    anchors: dict[str, np.ndarray]
    state: RunState
    rounds: int
    # An extension's blocking cells (veclink_spark.extend.extension_cells), which the model reuses.
    cells: np.ndarray | None = None


@dataclass
class RoundPlan:
    """One round's votes and how they are to be read (the branch of the phase that produced them)."""

    votes: RoundVotes
    views: int  # m: views (or bagged maps) of the round
    floor: float  # a candidate needs at least floor x m round votes
    branch: str
    keep: float = 1.0  # share of candidate pairs kept (take-off dropout)
    init: bool = False  # the take-off's first round from distribution descriptors (no map)
    union: bool = False  # a polish round whose links join the cut links


@dataclass
class Promotion:
    """The candidates of a round and the ones promoted (indices into ``cand``)."""

    cand: Candidates
    promoted: list[int]
    threshold: float = math.inf
    mixture: dict[str, Any] | None = None
    cut: list[int] | None = None  # the promoted cut at the mixture threshold, when the cut applies


def empty_candidates() -> Candidates:
    e = np.array([])
    return Candidates(e, e, e, e, e)
