"""Contracts of the Spark round stages on hand-written rows: each stage must give what the in-process
engine computes from the same rows (the kernels and veclink_spark.backends.in_process), ties and all."""

from __future__ import annotations

import numpy as np
import pandas as pd

from veclink_spark.backends.in_process import crowded_mutual_nearest, mutual_nearest, rescored
from veclink_spark.kernels.centre import normalise_rows
from veclink_spark.kernels.maps import csls_block
from veclink_spark.stages import candidates, evidence, mutual_nn


def _sig_rows(spark, view: list[int], key: list[int], ids: list[int], sig: np.ndarray):
    pdf = pd.DataFrame(
        {
            "view": np.asarray(view, dtype=np.int32),
            "key": np.asarray(key, dtype=np.int32),
            "id": np.asarray(ids, dtype=np.int64),
            "dist": np.zeros(len(ids)),
            "sig": [row.astype(np.float32).tolist() for row in sig],
        }
    )
    return spark.createDataFrame(pdf, "view int, key int, id bigint, dist double, sig array<float>")


def test_csls_best_gives_the_kernels_block_matches(spark) -> None:
    rng = np.random.default_rng(3)
    left = normalise_rows(rng.normal(size=(9, 4))).astype(np.float32)
    right = normalise_rows(rng.normal(size=(7, 4))).astype(np.float32)
    # Two blocks: rows 0-4 / 0-3 in cell 0, the rest in cell 1; ids far above 2^53.
    lids = [2**60 + i for i in range(9)]
    rids = [-(2**61) - i for i in range(7)]
    lkey = [0] * 5 + [1] * 4
    rkey = [0] * 4 + [1] * 3
    ls = _sig_rows(spark, [0] * 9, lkey, lids, left)
    rs = _sig_rows(spark, [0] * 7, rkey, rids, right)
    got = candidates.csls_best(ls, rs, k=2, max_block_size=100).toPandas()
    want = []
    for cell, (lo_l, hi_l, lo_r, hi_r) in enumerate(((0, 5, 0, 4), (5, 9, 4, 7))):
        b = csls_block(
            np.asarray(lids[lo_l:hi_l]), left[lo_l:hi_l], np.asarray(rids[lo_r:hi_r]), right[lo_r:hi_r], 2
        )
        for a, ab, sc, r, c in zip(b.left, b.left_best, b.left_score, b.left_r, b.left_cos, strict=True):
            want.append((cell, int(a), int(ab), float(sc), "L", float(r), float(c)))
        for a, ab, sc, r, c in zip(b.right, b.right_best, b.right_score, b.right_r, b.right_cos, strict=True):
            want.append((cell, int(ab), int(a), float(sc), "R", float(r), float(c)))
    cols = [got[c] for c in ("key", "left_id", "right_id", "sim", "dir", "r", "cos")]
    rows = sorted(zip(*cols, strict=True))
    assert [tuple(x) for x in rows] == sorted(want)
    assert set(got["block_size"]) == {5, 4}  # each block's larger side
    sizes = candidates.best_block_sizes(candidates.csls_best(ls, rs, 2, 100)).first()
    assert (sizes["blocks"], sizes["max_block"], sizes["mean_block"]) == (2, 5, 4.5)


def test_csls_best_cuts_blocks_and_skips_one_sided_ones(spark) -> None:
    rng = np.random.default_rng(4)
    left = normalise_rows(rng.normal(size=(6, 3)))
    right = normalise_rows(rng.normal(size=(4, 3)))
    ls = _sig_rows(spark, [0] * 6, [0] * 5 + [7], list(range(6)), left)  # key 7: no right rows
    rs = _sig_rows(spark, [0] * 4, [0] * 4, list(range(100, 104)), right)
    got = candidates.csls_best(ls, rs, k=1, max_block_size=3).toPandas()
    # Cut to 3 rows a side (all at distance 0: the smaller ids stay); block 7 has one side only.
    assert set(got["key"]) == {0}
    assert set(got.loc[got["dir"] == "L", "left_id"]) <= {0, 1, 2}
    assert set(got.loc[got["dir"] == "R", "right_id"]) <= {100, 101, 102}


def test_mutual_nearest_pairs_equal_the_reference_with_ties(spark) -> None:
    best = pd.DataFrame(
        {
            "view": [0, 0, 0, 0, 0, 0, 1, 1],
            "left_id": [1, 1, 2, 1, 2, 3, 1, 1],
            "right_id": [10, 11, 10, 10, 10, 11, 10, 10],
            "sim": [0.9, 0.9, 0.5, 0.9, 0.5, 0.2, 0.3, 0.3],
            "dir": ["L", "L", "L", "R", "R", "R", "L", "R"],
        }
    )
    # Left 1 ties between right 10 and 11 (smaller id wins: 10); right 10 prefers left 1; right 11 has
    # only left 3, whose best is not 11: no pair. View 1: one mutual pair.
    sdf = spark.createDataFrame(best, "view int, left_id bigint, right_id bigint, sim double, dir string")
    got = mutual_nn.mutual_nearest_pairs(sdf).toPandas()
    want = mutual_nearest(best)
    key = ["view", "left_id", "right_id"]
    assert got.sort_values(key)[key].values.tolist() == want.sort_values(key)[key].values.tolist()
    assert want.sort_values(key)[key].values.tolist() == [[0, 1, 10], [1, 1, 10]]


def _two_probe_best(spark):
    """A refine round's block best rows (csls_best, k 3) of random rows in two overlapping cells each."""
    rng = np.random.default_rng(8)
    left = normalise_rows(rng.normal(size=(30, 5))).astype(np.float32)
    right = normalise_rows(rng.normal(size=(25, 5))).astype(np.float32)
    lkey = [i % 3 for i in range(30)] + [(i + 1) % 3 for i in range(30)]
    rkey = [i % 3 for i in range(25)] + [(i + 2) % 3 for i in range(25)]
    lids, rids = [2**60 + i for i in range(30)], [7 * i for i in range(25)]
    ls = _sig_rows(spark, [0] * 60, lkey, lids * 2, np.vstack([left, left]))
    rs = _sig_rows(spark, [0] * 50, rkey, rids * 2, np.vstack([right, right]))
    return candidates.csls_best(ls, rs, k=3, max_block_size=100)


def test_rescored_mutual_pairs_equal_the_reference(spark) -> None:
    # Rows of a refine round whose rows sit in two overlapping cells each (probes 2): a mutual pair is
    # scored with each row's largest r over its blocks, the same bits in SQL as in numpy.
    best_sdf = _two_probe_best(spark)
    got = mutual_nn.mutual_nearest_pairs(best_sdf, rescore=True).toPandas()
    best = best_sdf.toPandas()
    want = rescored(best, mutual_nearest(best))
    key = ["view", "left_id", "right_id"]
    assert len(want) >= 5
    g, w = got.sort_values(key).reset_index(drop=True), want.sort_values(key).reset_index(drop=True)
    assert g[key].values.tolist() == w[key].values.tolist()
    assert g["sim"].tolist() == w["sim"].tolist()  # bit for bit
    # Where a row's largest r is another block's, the pair scores lower than in its own block.
    plain = mutual_nearest(best)[key + ["sim"]].merge(w, on=key, suffixes=("_block", ""))
    assert (plain["sim"] <= plain["sim_block"]).all() and (plain["sim"] < plain["sim_block"]).any()


def test_crowded_choice_across_blocks_equals_the_reference(spark) -> None:
    # The rows of the test above, each row's match across its blocks chosen by CSLS with its largest r:
    # the same pairs and the same bits in SQL as in numpy.
    best_sdf = _two_probe_best(spark)
    got = mutual_nn.mutual_nearest_pairs(best_sdf, rescore=True, crowded=True).toPandas()
    want = crowded_mutual_nearest(best_sdf.toPandas())
    key = ["view", "left_id", "right_id"]
    assert len(want) >= 5
    g, w = got.sort_values(key).reset_index(drop=True), want.sort_values(key).reset_index(drop=True)
    assert g[key].values.tolist() == w[key].values.tolist()
    assert g["sim"].tolist() == w["sim"].tolist()  # bit for bit


def test_a_far_block_does_not_win_by_its_low_r(spark) -> None:
    # Left 1 sits in its own block 0 (right 10 at cos 0.9, a crowded neighbourhood: r 0.875) and probes
    # block 1 far away (right 20 at cos 0.6, sparse: r 0.35). By each block's own CSLS the far pair
    # scores 0.55 against 0.045 and wins; with each row's largest r, 0.025 against 0.045: right 10.
    best = pd.DataFrame(
        {
            "view": [0, 0, 0, 0],
            "left_id": [1, 1, 1, 1],
            "right_id": [10, 20, 10, 20],
            "sim": [0.045, 0.55, 0.045, 0.55],
            "dir": ["L", "L", "R", "R"],
            "r": [0.875, 0.35, 0.88, 0.3],
            "cos": [0.9, 0.6, 0.9, 0.6],
        }
    )
    key = ["view", "left_id", "right_id"]
    assert rescored(best, mutual_nearest(best))[key].values.tolist() == [[0, 1, 20]]
    want = crowded_mutual_nearest(best)
    assert want[key].values.tolist() == [[0, 1, 10]]
    assert want["sim"].tolist() == [0.045]
    schema = "view int, left_id bigint, right_id bigint, sim double, dir string, r double, cos double"
    got = mutual_nn.mutual_nearest_pairs(spark.createDataFrame(best, schema), rescore=True, crowded=True)
    assert got.toPandas()[key + ["sim"]].values.tolist() == [[0, 1, 10, 0.045]]


def test_votes_accumulate_and_eligibility(spark) -> None:
    mnn = spark.createDataFrame(
        pd.DataFrame(
            {
                "view": [0, 1, 2, 0],
                "left_id": [1, 1, 1, 2],
                "right_id": [10, 10, 10, 20],
                "sim": [0.5, 0.7, 0.6, 0.1],
            }
        ),
        "view int, left_id bigint, right_id bigint, sim double",
    )
    votes = evidence.round_votes(mnn)
    previous = spark.createDataFrame(
        pd.DataFrame({"left_id": [1, 3], "right_id": [10, 30], "cum_votes": [4, 2]}),
        "left_id bigint, right_id bigint, cum_votes long",
    )
    table = evidence.accumulate(votes, previous).toPandas().sort_values("left_id")
    assert table[["left_id", "round_votes", "cum_votes"]].values.tolist() == [[1, 3, 7], [2, 1, 1], [3, 0, 2]]
    assert table["sim"].tolist()[:2] == [0.7, 0.1]
    exclude = spark.createDataFrame(
        pd.DataFrame({"left_id": [2], "right_id": [99]}), "left_id bigint, right_id bigint"
    )
    eligible = evidence.eligible(evidence.accumulate(votes, previous), exclude).toPandas()
    # Pair (2, 20) touches an excluded left id; (3, 30) was not proposed this round.
    assert eligible[["left_id", "right_id"]].values.tolist() == [[1, 10]]
