"""The round driver on its own: :func:`veclink_spark.engine.run_rounds` on the in-process backend, with no
API around it (phase switch, stop reasons, resume after a committed round, seeds kept)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from veclink_spark import LinkConfig
from veclink_spark.backends.in_process import NumpyBackend
from veclink_spark.engine import MIN_ANCHORS, SETTLE_FRACTION, run_rounds
from veclink_spark.state import RunResult
from veclink_spark.synthetic import SyntheticPair, make_pair

# Take-off with a dropout schedule that ends within a few rounds, and a mixture cut then a polish round
# (the synthetic pair below runs 10 rounds: geh, refine take-off, cut, polish).
FAST: dict[str, Any] = {
    "advanced": {
        "bootstrap": {"max_rounds": 4},
        "refine": {"max_rounds": 10, "keep_patience": 1, "keep_max_level_rounds": 2},
    }
}
# No dropout and no polish: the take-off ends when its links settle.
SETTLE: dict[str, Any] = {"advanced": {"refine": {"max_rounds": 30, "polish_rounds": 0, "takeoff_keep": 1.0}}}
# The published loop alone, capped at two rounds.
GEH_ONLY: dict[str, Any] = {"advanced": {"refine": {"mode": "none"}, "bootstrap": {"max_rounds": 2}}}
# Round keys that measure time, not behaviour.
TIMING = {"seconds", "commit_seconds"}


class Interrupted(Exception):
    """The driver stopped before a round (as a killed job would, after its last commit)."""


class StopsBefore(NumpyBackend):
    """A NumpyBackend whose driver is interrupted when round ``stop_at`` begins, once; ``started``: the
    rounds it was asked to run."""

    def __init__(self, pair: SyntheticPair, cfg: LinkConfig, stop_at: int):
        super().__init__(pair.left_ids, pair.left, pair.right_ids, pair.right, cfg)
        self.stop_at: int | None = stop_at
        self.started: list[int] = []

    def label_round(self, round_no: int, phase: str) -> None:
        self.started.append(round_no)
        if round_no == self.stop_at:
            self.stop_at = None
            raise Interrupted(round_no)


def _backend(pair: SyntheticPair, cfg: LinkConfig) -> NumpyBackend:
    return NumpyBackend(pair.left_ids, pair.left, pair.right_ids, pair.right, cfg)


def _run(pair: SyntheticPair, conf: dict[str, Any], seed_left=None, seed_right=None) -> RunResult:
    cfg = LinkConfig.from_dict(conf)
    sl = pair.seed_left if seed_left is None else seed_left
    sr = pair.seed_right if seed_right is None else seed_right
    return run_rounds(_backend(pair, cfg), sl, sr, cfg)


def _pairs(anchors: dict[str, np.ndarray], seeds: bool) -> set[tuple[int, int]]:
    keep = anchors["is_seed"] == seeds
    return set(zip(anchors["left_id"][keep].tolist(), anchors["right_id"][keep].tolist(), strict=True))


def _same_anchors(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"), k


def _behaviour(result: RunResult) -> list[dict[str, Any]]:
    return [{k: v for k, v in h.items() if k not in TIMING} for h in result.state.history]


@pytest.fixture(scope="module")
def pair() -> SyntheticPair:
    """600 objects, 30% of them shared, 15 seeds."""
    return make_pair(n_objects=600, alpha=0.3, n_seeds=15, seed=3)


@pytest.fixture(scope="module")
def whole(pair) -> tuple[RunResult, list]:
    """The FAST run uninterrupted, with every committed round."""
    cfg = LinkConfig.from_dict(FAST)
    b = _backend(pair, cfg)
    return run_rounds(b, pair.seed_left, pair.seed_right, cfg), b.rounds


def test_fast_run_goes_through_every_phase(whole) -> None:
    """The fixture the resume tests interrupt has the phases they mean to cut: geh, a take-off with
    dropout, a mixture cut, a polish round."""
    result, _ = whole
    phases = [h["phase"] for h in result.state.history]
    assert phases[0] == "geh" and phases[-1] == "refine"
    assert any(h["keep"] < 1.0 for h in result.state.history)
    assert result.state.cut_round is not None and result.state.cut_round < result.rounds
    assert result.state.stage == "polish"
    assert result.state.stop_reason == "polish round cap"


def test_switches_from_geh_to_refine_when_the_anchors_reach_min_anchors() -> None:
    small = make_pair(n_objects=300, alpha=0.3, n_seeds=15, seed=3)
    result = _run(small, SETTLE)
    phases = [h["phase"] for h in result.state.history]
    n_geh = phases.count("geh")
    assert n_geh >= 2, phases  # the switch is not simply the first round
    assert phases == ["geh"] * n_geh + ["refine"] * (len(phases) - n_geh)
    # the loop hands over at the first round whose anchors (seeds + links) reach MIN_ANCHORS
    reached = [len(small.seed_left) + h["links"] >= MIN_ANCHORS for h in result.state.history[:n_geh]]
    assert reached == [False] * (n_geh - 1) + [True]


@pytest.fixture(scope="module")
def geh_only(pair) -> RunResult:
    return _run(pair, GEH_ONLY)


def test_without_refinement_the_loop_stops_at_its_round_cap(geh_only) -> None:
    result = geh_only
    assert result.rounds == 2
    assert [h["phase"] for h in result.state.history] == ["geh", "geh"]
    assert result.state.history[-1]["promoted"] > 0  # it stopped for the cap, not for a stall
    assert result.state.stop_reason == "round cap"


def test_seed_order_does_not_change_the_links(pair, geh_only) -> None:
    order = np.random.default_rng(0).permutation(len(pair.seed_left))
    assert not np.array_equal(order, np.arange(len(order)))
    shuffled = _run(pair, GEH_ONLY, pair.seed_left[order], pair.seed_right[order])
    _same_anchors(shuffled.anchors, geh_only.anchors)


def test_take_off_that_cannot_settle_stops_at_the_refine_cap(pair) -> None:
    conf = {"advanced": {"refine": {"max_rounds": 2, "polish_rounds": 0, "takeoff_keep": 0.1}}}
    result = _run(pair, conf)
    refine = [h for h in result.state.history if h["phase"] == "refine"]
    assert len(refine) == 2
    assert refine[-1]["keep"] < 1.0  # a round with dropout never counts as settled
    assert result.state.stop_reason == "refine round cap"


def test_take_off_ends_when_its_links_settle(pair) -> None:
    result = _run(pair, SETTLE)
    last = result.state.history[-1]
    refine_rounds = sum(h["phase"] == "refine" for h in result.state.history)
    assert result.state.stop_reason == "links stable"
    assert 1 < refine_rounds < 30
    assert last["added"] + last["removed"] <= SETTLE_FRACTION * last["links"]
    # the round before did not settle, else the run would have ended there
    before = result.state.history[-2]
    assert before["added"] + before["removed"] > SETTLE_FRACTION * before["links"]


@pytest.mark.parametrize("stop_at", [2, 5, 10])
def test_resume_after_a_committed_round_gives_the_uninterrupted_links(pair, whole, stop_at) -> None:
    """Interrupted when round ``stop_at`` begins (2: the take-off's first round; 5: in its dropout; 10:
    the polish round after the cut), then run again: it resumes after round ``stop_at - 1``."""
    result, _ = whole
    cfg = LinkConfig.from_dict(FAST)
    b = StopsBefore(pair, cfg, stop_at)
    with pytest.raises(Interrupted):
        run_rounds(b, pair.seed_left, pair.seed_right, cfg)
    assert b.rounds[-1][0] == stop_at - 1
    b.started.clear()
    resumed = run_rounds(b, pair.seed_left, pair.seed_right, cfg)
    assert b.started == list(range(stop_at, result.rounds + 1))  # no committed round ran again
    assert resumed.rounds == result.rounds
    _same_anchors(resumed.anchors, result.anchors)
    assert _behaviour(resumed) == _behaviour(result)


def test_a_finished_run_resumes_to_its_result(pair, whole) -> None:
    result, _ = whole
    cfg = LinkConfig.from_dict(FAST)
    b = _backend(pair, cfg)
    b.rounds = [whole[1][-1]]
    again = run_rounds(b, pair.seed_left, pair.seed_right, cfg)
    assert again.rounds == result.rounds
    _same_anchors(again.anchors, result.anchors)


def _check_seeds_kept(rounds: list, seeds: set[tuple[int, int]]) -> None:
    """Every committed round holds every seed pair as a seed, and no row twice."""
    for _, anchors, _ in rounds:
        assert _pairs(anchors, seeds=True) == seeds
        assert len(set(anchors["left_id"].tolist())) == len(anchors["left_id"])
        assert len(set(anchors["right_id"].tolist())) == len(anchors["right_id"])


def test_seeds_are_kept_in_every_round(pair, whole) -> None:
    result, rounds = whole
    assert len(rounds) == result.rounds
    _check_seeds_kept(rounds, set(zip(pair.seed_left.tolist(), pair.seed_right.tolist(), strict=True)))


def test_wrong_seeds_are_kept_too(pair) -> None:
    """Two seeds swapped: wrong pairs, which the refinement (re-deriving its links every round) must
    still keep, as seeds are never revoked."""
    sr = pair.seed_right.copy()
    sr[[0, 1]] = sr[[1, 0]]
    seeds = set(zip(pair.seed_left.tolist(), sr.tolist(), strict=True))
    truth = set(zip(pair.truth_left.tolist(), pair.truth_right.tolist(), strict=True))
    assert len(seeds - truth) == 2
    cfg = LinkConfig.from_dict(SETTLE)
    b = _backend(pair, cfg)
    result = run_rounds(b, pair.seed_left, sr, cfg)
    assert any(h["phase"] == "refine" for h in result.state.history)
    _check_seeds_kept(b.rounds, seeds)
