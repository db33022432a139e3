"""The in-process reference: known-answer recovery on synthetic data with local isometry,
determinism, and the take-off diagnosis on data with no relation between the sides."""

from __future__ import annotations

import numpy as np
import pytest

from veclink_spark import LinkConfig, link_arrays
from veclink_spark.errors import InputError
from veclink_spark.synthetic import make_pair

try:
    from synthetic_runs import FAST, link_pair
except ImportError:  # tests/ became a package
    from tests.synthetic_runs import FAST, link_pair


def _score(links, pair) -> tuple[float, float]:
    truth = dict(zip(pair.truth_left.tolist(), pair.truth_right.tolist(), strict=False))
    seeds = set(pair.seed_left.tolist())
    got = links[~links["is_seed"]]
    correct = sum(
        truth.get(a) == b for a, b in zip(got["left_id"], got["right_id"], strict=False) if a not in seeds
    )
    return correct / max(len(got), 1), correct / (len(truth) - len(seeds))


@pytest.fixture(scope="module")
def pair():
    return make_pair(n_objects=600, alpha=0.3, n_seeds=15, seed=3)


@pytest.fixture(scope="module")
def run(pair):
    return link_pair(pair, FAST)


def test_recovers_most_of_the_generated_overlap(pair, run) -> None:
    links, summary = run
    precision, recall = _score(links, pair)
    assert summary["took_off"], summary["reasons"]
    assert 0 < summary["trusted_links"] <= summary["n_links"]
    # Known answer: the synthetic pair has local isometry by construction.
    assert recall >= 0.5, (precision, recall)
    assert precision >= 0.5, (precision, recall)


def test_output_shape_and_one_to_one(run) -> None:
    links, summary = run
    assert list(links.columns) == [
        "left_id",
        "right_id",
        "round",
        "is_seed",
        "votes",
        "views",
        "probability",
        "precision_estimate",
        "similarity",
    ]
    assert links["left_id"].is_unique and links["right_id"].is_unique
    assert links["is_seed"].sum() == 15
    assert ((links["probability"] > 0) & (links["probability"] <= 1)).all()
    assert summary["rounds"] == len(summary["history"]) >= 1


def test_same_seed_same_links_and_seed_order_does_not_matter(pair, run) -> None:
    links, _ = run
    order = np.random.default_rng(0).permutation(len(pair.seed_left))
    again, _ = link_arrays(
        pair.left_ids[::-1],
        pair.left[::-1],
        pair.right_ids,
        pair.right,
        pair.seed_left[order],
        pair.seed_right[order],
        LinkConfig.from_dict(FAST),
    )
    assert set(zip(links["left_id"], links["right_id"], strict=False)) == set(
        zip(again["left_id"], again["right_id"], strict=False)
    )


def test_unrelated_tables_are_reported_as_stalled() -> None:
    # Dimensions like real encoders' (in 16-d, 300 random points can be matched by an orthogonal map
    # well enough to look like a weak signal).
    rng = np.random.default_rng(5)
    left = rng.normal(size=(400, 64))
    right = rng.normal(size=(400, 48))
    ids = np.arange(400)
    links, summary = link_arrays(ids, left, ids + 1000, right, ids[:15], ids[:15] + 1000, LinkConfig())
    assert not summary["took_off"]
    assert summary["verdict"] == "stalled" and summary["trusted_links"] == 0
    assert summary["estimated_precision"] is not None and summary["estimated_precision"] <= 0.1
    assert summary["reasons"] and summary["advice"]
    assert summary["seed_consistency_spearman"] is not None and summary["seed_consistency_spearman"] < 0.3


def test_bad_seeds_are_rejected() -> None:
    x = np.eye(4)
    with pytest.raises(InputError, match="at least two"):
        link_arrays(np.arange(4), x, np.arange(4), x, np.array([0]), np.array([0]))
    with pytest.raises(InputError, match="absent"):
        link_arrays(np.arange(4), x, np.arange(4), x, np.array([0, 9]), np.array([0, 1]))


def test_adaptive_keep_schedule_doubles_on_a_plateau_or_at_the_level_cap() -> None:
    from veclink_spark.engine import KEEP_MIN_GAIN, _adapt_keep
    from veclink_spark.state import RunState

    schedule = {"keep_patience": 3, "keep_max_level_rounds": 6}
    rf = LinkConfig.from_dict({"advanced": {"refine": schedule}}).refine
    state = RunState(phase="refine")
    levels = []
    # Rising by 0.02 a round for 3 rounds, then flat (gains under KEEP_MIN_GAIN): doubles 3 rounds later.
    flat = [0.34 + f * KEEP_MIN_GAIN for f in (0.6, 0.8, 0.2)]
    for objective in [0.30, 0.32, 0.34, *flat]:
        _adapt_keep(state, objective, rf)
        levels.append(state.keep_level)
    assert levels == [0, 0, 0, 0, 0, 1]
    # Still rising every round: the level cap (6 rounds) doubles it anyway; the best carries over.
    for k in range(6):
        _adapt_keep(state, 0.36 + 0.02 * k, rf)
        levels.append(state.keep_level)
    assert levels[6:] == [1, 1, 1, 1, 1, 2]
    assert state.objective_best == pytest.approx(0.46) and state.level_rounds == 0
    # No objective (a backend without CSLS means) counts as no gain.
    for _ in range(3):
        _adapt_keep(state, None, rf)
    assert state.keep_level == 3
    # The state survives its JSON form (what a resumed run restarts from).
    assert RunState.from_dict(state.to_dict()) == state


def test_union_polish_keeps_every_cut_link_and_adds_pairs_the_bagged_maps_agree_on(pair) -> None:
    def run_with(**refine):
        fast = FAST["advanced"]
        # the rounds' own links: no final matching after them
        return link_pair(
            pair,
            {
                "links": {"final_match": False},
                "advanced": {**fast, "refine": {**fast["refine"], "mixture_separation": 0.0, **refine}},
            },
        )

    def pairs(links):
        got = links[~links["is_seed"]]
        return set(zip(got["left_id"], got["right_id"], strict=False))

    cut, cut_summary = run_with(polish_after_cut=False)
    union, union_summary = run_with()  # default: the polish after the cut adds to the cut links
    assert cut_summary["history"][-1]["mixture"]["applies"]
    # A higher mixture posterior cuts the same take-off higher: fewer links, each one a cut link.
    surer, surer_summary = run_with(polish_after_cut=False, mixture_posterior=0.95)
    assert surer_summary["rounds"] == cut_summary["rounds"]
    assert (
        surer_summary["history"][-1]["mixture"]["threshold"]
        > cut_summary["history"][-1]["mixture"]["threshold"]
    )
    assert pairs(surer) < pairs(cut)
    # The same take-off, then one polish round whose agreed pairs join the cut links.
    assert union_summary["rounds"] == cut_summary["rounds"] + 1
    assert pairs(cut) < pairs(union)
    added = union[~union["is_seed"] & ~union["left_id"].isin(cut["left_id"])]
    assert len(added) == len(pairs(union)) - len(pairs(cut))
    assert (added["round"] == union_summary["rounds"]).all()
    assert union["left_id"].is_unique and union["right_id"].is_unique
    # A cut at least as clean as union_max_separation ends the run with the cut links.
    separation = cut_summary["history"][-1]["mixture"]["separation"]
    assert separation < LinkConfig().refine.union_max_separation  # the union above ran by default
    clean, clean_summary = run_with(union_max_separation=separation)
    assert pairs(clean) == pairs(cut) and clean_summary["rounds"] == cut_summary["rounds"]


def test_seed_ranks_put_right_seeds_first_and_wrong_ones_anywhere() -> None:
    from veclink_spark.diagnostics import seed_ranks
    from veclink_spark.kernels.centre import normalise_rows

    rng = np.random.default_rng(11)
    q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    left = normalise_rows(rng.normal(size=(400, 32)))
    right = normalise_rows(left @ q + 0.05 * rng.normal(size=(400, 32)))
    links = (left[:380], right[:380])
    seed_l, seed_r = left[380:], right[380:].copy()
    seed_r[:5] = seed_r[[1, 2, 3, 4, 0]]  # the first five seeds wrong (a partner of another seed)
    ranks = seed_ranks((seed_l, seed_r), links)
    assert (ranks.rank[:5] > 5).all() and (ranks.gap[:5] > 0.15).all()
    assert (ranks.rank[5:] == 1).all() and (ranks.gap[5:] <= 0).all()
    assert ranks.doubted(5).tolist() == [True] * 5 + [False] * 15
    # a partner second behind a near-equal row (a dense part of a table) is not doubted at any rank
    close = type(ranks)(np.array([40, 40]), np.array([0.05, 0.3]))
    assert close.doubted(5).tolist() == [False, True]
    assert close.trusting(np.array([False, True])).doubted(5).tolist() == [False, False]


def test_a_run_names_its_wrong_seeds(pair, run) -> None:
    rng = np.random.default_rng(2)
    wrong = rng.choice(len(pair.seed_right), size=4, replace=False)
    partners = set(pair.truth_right.tolist())
    others = np.array(sorted(set(pair.right_ids.tolist()) - set(pair.seed_right.tolist()) - partners))
    seed_right = pair.seed_right.copy()
    seed_right[wrong] = others[:4]  # right rows with no partner at all: certainly wrong pairs
    links, summary = link_arrays(
        pair.left_ids,
        pair.left,
        pair.right_ids,
        pair.right,
        pair.seed_left,
        seed_right,
        LinkConfig.from_dict(FAST),
    )
    assert summary["verdict"] == "took off"
    named = {(s["left_id"], s["right_id"]) for s in summary["suspect_seeds"]}
    assert named == set(zip(pair.seed_left[wrong].tolist(), seed_right[wrong].tolist(), strict=True))
    assert run[1]["suspect_seeds"] == []  # the same pair with its right seeds: none named


def test_churn_stalls_a_run_unless_an_extension_is_converging_on_links_that_keep_distances() -> None:
    from veclink_spark.diagnostics import stall_checks
    from veclink_spark.kernels.centre import normalise_rows

    rng = np.random.default_rng(12)
    q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    left = normalise_rows(rng.normal(size=(300, 32)))
    kept = (left, normalise_rows(left @ q + 0.05 * rng.normal(size=(300, 32))))  # distances kept
    chance = (left, normalise_rows(rng.normal(size=(300, 32))))  # a chance matching's links

    def checks(phase: str, links: tuple[np.ndarray, np.ndarray]):
        last = {"phase": phase, "views_branch": "procrustes/takeoff", "added": 150, "removed": 140}
        return stall_checks([dict(last, links=1000)], 1000, 15, 5000, 5000, links)

    moving = checks("extend", kept)  # churn 29 %, as the 3M run's fourth settling round
    assert moving.churn > 0.25 and moving.converging and not moving.unsettled and not moving.stalled
    assert checks("refine", kept).unsettled and checks("refine", kept).stalled  # the fit's rounds
    assert checks("extend", chance).stalled and not checks("extend", chance).converging


def test_links_estimated_mostly_wrong_stall_a_run_whose_rounds_settled() -> None:
    import pandas as pd

    from veclink_spark.diagnostics import MIN_ESTIMATED_PRECISION, diagnose
    from veclink_spark.kernels.centre import normalise_rows
    from veclink_spark.state import RunState

    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    left = normalise_rows(rng.normal(size=(300, 32)))
    kept = (left, normalise_rows(left @ q + 0.05 * rng.normal(size=(300, 32))))  # distances kept
    # settled rounds (2 % churn), no polish: every check of the rounds says "took off"
    history = [{"round": 1, "phase": "refine", "views_branch": "procrustes/takeoff", "added": 10,
                "removed": 10, "links": 1000}]  # fmt: skip
    state = RunState(phase="refine", done=True, stop_reason="links stable", history=history)
    links = pd.DataFrame({"left_id": np.arange(1015), "right_id": np.arange(1015),
                          "is_seed": np.arange(1015) < 15})  # fmt: skip
    seeds = (kept[0][:15], kept[1][:15])

    def verdict(estimate: float | None) -> dict:
        precision = None if estimate is None else {"estimated_precision": estimate, "trusted_links": 0}
        return diagnose(state, links, 5000, 5000, *seeds, LinkConfig(), kept, None, precision)

    assert verdict(None)["verdict"] == "took off" and verdict(0.8)["verdict"] == "took off"
    low = verdict(MIN_ESTIMATED_PRECISION - 0.01)
    assert low["verdict"] == "stalled" and not low["took_off"]
    assert any("estimated 29% right" in r for r in low["reasons"])
    assert not any("floor" in r for r in low["reasons"])
    # where every row of a side was counted without a partner, the estimate is a floor and says so
    floor = diagnose(
        state, links, 5000, 5000, *seeds, LinkConfig(), kept, None,
        {"estimated_precision": 0.01, "trusted_links": 0, "estimate_is_lower_bound": True},
    )  # fmt: skip
    assert floor["verdict"] == "stalled"
    assert any("that is a floor" in r for r in floor["reasons"])
    assert not any("chance matches" in r for r in floor["reasons"])
    assert not any("none of the" in a for a in floor["advice"])
    # a round of questions answered all no: the advice turns from questions to known pairs
    no_yes = diagnose(
        state, links, 5000, 5000, *seeds, LinkConfig(), kept, None,
        {"estimated_precision": 0.01, "trusted_links": 0, "estimate_is_lower_bound": True,
         "answers": {"confirmed": 0, "rejected": 15, "rejected_links_dropped": 15}},
    )  # fmt: skip
    assert any("none of the 15 pairs answered was right" in a for a in no_yes["advice"])
    assert not any("answer the run's questions" in r for r in no_yes["reasons"])
