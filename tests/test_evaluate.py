"""Tests of link scoring (veclink_spark.evaluate) on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from veclink_spark.errors import InputError
from veclink_spark.evaluate import best_threshold, reliability, score_by_round, score_links
from veclink_spark.plots import precision_recall_by_round

# Truth: 5 pairs, (1, 10) is the seed.
TRUTH = pd.DataFrame(
    {
        "left_id": [1, 2, 3, 4, 5],
        "right_id": [10, 20, 30, 40, 50],
        "is_seed": [True, False, False, False, False],
    }
)
SEEDS = [(1, 10)]


def test_hand_computed_scores_with_seed_excluded() -> None:
    links = ([1, 2, 3, 4], [10, 20, 99, 40])  # seed pair, correct, wrong, correct
    s = score_links(links, TRUTH, SEEDS)
    assert s["n_links"] == 3 and s["n_correct"] == 2 and s["n_true"] == 4
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 4)
    assert s["f1"] == pytest.approx(4 / 7)


def test_seeds_from_argument_or_flag_give_the_same_result() -> None:
    links = ([1, 2, 3], [10, 20, 30])
    truth_no_flag = TRUTH[["left_id", "right_id"]]
    a = score_links(links, truth_no_flag, SEEDS)
    b = score_links(links, TRUTH, None)
    assert a == b and a["n_true"] == 4 and a["n_links"] == 2 and a["precision"] == 1.0


def test_without_seed_exclusion_the_seed_counts() -> None:
    s = score_links(([1, 2], [10, 20]), TRUTH[["left_id", "right_id"]], None)
    assert s["n_true"] == 5 and s["n_correct"] == 2 and s["recall"] == pytest.approx(2 / 5)


def test_link_touching_a_seed_row_is_wrong_not_excluded() -> None:
    s = score_links(([1, 2], [20, 30]), TRUTH, SEEDS)
    assert s["n_links"] == 2 and s["n_correct"] == 0 and s["precision"] == 0.0


def test_duplicates_count_once_and_empty_links_score_zero() -> None:
    s = score_links(([2, 2, 3], [20, 20, 30]), TRUTH, SEEDS)
    assert s["n_links"] == 2 and s["n_correct"] == 2 and s["precision"] == 1.0 and s["recall"] == 0.5
    e = score_links(([], []), TRUTH, SEEDS)
    assert e == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "n_links": 0, "n_correct": 0, "n_true": 4}


def test_input_containers_are_equivalent() -> None:
    left, right = np.array([2, 3, 5]), np.array([20, 31, 50])
    expected = score_links((left, right), TRUTH, SEEDS)
    assert expected["n_correct"] == 2
    for links in (
        pd.DataFrame({"left_id": left, "right_id": right, "other": 1}),
        pa.table({"left_id": left, "right_id": right}),
        {"left_id": left, "right_id": right},
        np.stack([left, right], axis=1),
        list(zip(left.tolist(), right.tolist(), strict=True)),
    ):
        assert score_links(links, TRUTH, np.array(SEEDS)) == expected


def test_bad_inputs_raise() -> None:
    with pytest.raises(InputError, match="missing column"):
        score_links(pd.DataFrame({"left_id": [1]}), TRUTH)
    with pytest.raises(InputError, match="integer"):
        score_links(([1.5], [2.0]), TRUTH)
    with pytest.raises(InputError, match="same length"):
        score_links(([1, 2], [10]), TRUTH)


def test_string_ids_score_as_integer_ids_do() -> None:
    as_text = TRUTH.assign(left_id=TRUTH["left_id"].astype(str), right_id=TRUTH["right_id"].astype(str))
    links = pd.DataFrame({"left_id": ["2", "3", "4"], "right_id": ["20", "99", "40"]})
    assert score_links(links, as_text) == score_links(links.astype(int), TRUTH)


def test_reliability_bins_by_hand() -> None:
    links = pd.DataFrame(
        {
            "left_id": [1, 2, 3, 4, 5],
            "right_id": [10, 20, 31, 40, 51],
            "probability": [1.0, 0.9, 0.8, 0.3, 0.2],
        }
    )
    bins = reliability(links, TRUTH, SEEDS, n_bins=2)  # (1, 10) is the seed: dropped
    assert [b["n"] for b in bins] == [2, 2]
    assert bins[0]["lo"] == 0.0 and bins[0]["hi"] == 0.5 and bins[1]["hi"] == 1.0
    assert bins[0]["mean_prob"] == pytest.approx(0.25) and bins[0]["precision"] == pytest.approx(0.5)
    assert bins[1]["mean_prob"] == pytest.approx(0.85) and bins[1]["precision"] == pytest.approx(0.5)
    empty = reliability(links, TRUTH, SEEDS, n_bins=10)
    assert empty[5]["n"] == 0 and empty[5]["mean_prob"] is None and empty[5]["precision"] is None
    assert sum(int(b["n"] or 0) for b in empty) == 4


def test_reliability_rejects_bad_probabilities() -> None:
    with pytest.raises(InputError, match="probabilities"):
        reliability(([2], [20], [1.5]), TRUTH)
    with pytest.raises(InputError, match="required"):
        reliability(([2], [20]), TRUTH)


def test_score_by_round_is_cumulative() -> None:
    links = pd.DataFrame(
        {"left_id": [1, 2, 3, 4, 2], "right_id": [10, 20, 31, 40, 20], "round": [0, 1, 1, 2, 3]}
    )
    rows = score_by_round(links, TRUTH, SEEDS)
    assert [r["round"] for r in rows] == [0, 1, 2, 3]
    assert [r["n_new"] for r in rows] == [0, 2, 1, 0]  # the seed and the round-3 repeat add nothing
    assert [r["n_links"] for r in rows] == [0, 2, 3, 3]
    assert [r["n_correct"] for r in rows] == [0, 1, 2, 2]
    assert rows[1]["precision"] == pytest.approx(0.5) and rows[1]["recall"] == pytest.approx(0.25)
    assert rows[2]["precision"] == pytest.approx(2 / 3) and rows[2]["recall"] == pytest.approx(0.5)
    assert rows[-1]["f1"] == pytest.approx(score_links(links, TRUTH, SEEDS)["f1"])


def test_best_threshold_by_hand() -> None:
    # Scores: correct links at 0.9 and 0.7, wrong at 0.8 and 0.1; the seed (score 1.0) is dropped.
    links = ([1, 2, 3, 4, 5], [10, 20, 31, 40, 51], [1.0, 0.9, 0.8, 0.7, 0.1])
    b = best_threshold(links, TRUTH, SEEDS)
    # cut 0.9: P 1, R 1/4, F1 0.4; cut 0.8: P 1/2, R 1/4; cut 0.7: P 2/3, R 1/2, F1 4/7; cut 0.1: P 1/2, R 1/2
    assert b["threshold"] == pytest.approx(0.7) and b["n_links"] == 3 and b["n_correct"] == 2
    assert b["f1"] == pytest.approx(4 / 7)
    tied = best_threshold(([2, 3], [20, 31], [0.5, 0.5]), TRUTH, SEEDS)
    assert tied["n_links"] == 2 and tied["precision"] == 0.5  # equal scores are kept or cut together
    assert best_threshold(([], [], []), TRUTH, SEEDS)["threshold"] is None


def test_rounds_figure_scores_each_round_s_link_set() -> None:
    # The anchors table holds the whole link set after each round (not only the new links).
    anchors = pd.DataFrame(
        {
            "round": [0, 1, 1, 1, 2, 2, 2],
            "left_id": [1, 1, 2, 3, 1, 2, 4],
            "right_id": [10, 10, 20, 31, 10, 20, 40],
            "is_seed": [True, True, False, False, True, False, False],
        }
    )
    by_round = precision_recall_by_round(anchors, TRUTH)
    assert by_round["round"].tolist() == [0, 1, 2]
    assert by_round["precision"].tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert by_round["recall"].tolist() == pytest.approx([0.0, 0.25, 0.5])
