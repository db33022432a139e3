"""Stages of the scale design on hand-written data: the fit sample near the seeds and the per-anchor
signature centring, each checked in numpy and, where Spark computes it, against the Spark stage."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from veclink_spark.kernels.centre import normalise_rows
from veclink_spark.kernels.samples import neighbourhood_sample
from veclink_spark.kernels.signatures import (
    View,
    anchor_signatures,
    kernel_values,
    view_column_means,
    view_kernel_sums,
)


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return normalise_rows(rng.normal(size=(n, d)))


def test_neighbourhood_sample_keeps_each_seeds_nearest_rows() -> None:
    # Two seeds on two axes; rows on a circle: each seed keeps its 2 most similar rows of its half.
    seeds = np.array([[1.0, 0.0], [0.0, 1.0]])
    angles = np.array([0.05, 0.3, 0.6, 1.0, 1.2, 1.5])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    ids = np.array([60, 50, 40, 30, 20, 10])
    picked = neighbourhood_sample(ids, x, seeds, size=4)
    # Nearest seed 0: angles 0.05, 0.3, 0.6 (keep 0.05, 0.3); seed 1: 1.0, 1.2, 1.5 (keep 1.5, 1.2).
    assert sorted(ids[picked].tolist()) == [10, 20, 50, 60]
    assert ids[picked].tolist() == sorted(ids[picked].tolist())  # sorted by id
    # A table no larger than the sample is taken whole.
    assert sorted(neighbourhood_sample(ids, x, seeds, size=6).tolist()) == list(range(6))


def test_anchor_centring_subtracts_the_column_means() -> None:
    rng = np.random.default_rng(0)
    x, anchors = _unit(rng, 50, 8), _unit(rng, 5, 8)
    view = View(anchors=np.arange(5), bandwidth_left=0.8, bandwidth_right=0.8)
    counts, sums = view_kernel_sums(x, anchors, [view], "left")
    means = view_column_means(counts, sums, [view])
    assert counts.tolist() == [50]
    values, _ = kernel_values(x, anchors, 0.8)
    np.testing.assert_allclose(means[0], values.mean(axis=0), atol=1e-11)
    sig, _ = anchor_signatures(x, anchors, 0.8, "anchor", means[0])
    centred = values - means[0]
    np.testing.assert_allclose(sig, centred / np.linalg.norm(centred, axis=1, keepdims=True))
    # Row centring is another thing: it leaves each anchor's offset in place.
    row, _ = anchor_signatures(x, anchors, 0.8, "row")
    assert not np.allclose(row, sig)
    with pytest.raises(ValueError, match="column means"):
        anchor_signatures(x, anchors, 0.8, "anchor")


def _frame(spark, ids: np.ndarray, x: np.ndarray):
    vec = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1]).cast(pa.list_(pa.float64()))
    return spark.createDataFrame(pa.table({"id": ids, "vector": vec}).to_pandas()).repartition(3)


def test_spark_sample_and_column_means_equal_the_kernels(spark) -> None:
    from veclink_spark.backends.spark import SparkBackend
    from veclink_spark.stages.sample import neighbourhood_ids

    rng = np.random.default_rng(1)
    x = _unit(rng, 300, 6)
    ids = rng.choice(2**62, size=300, replace=False).astype(np.int64) - 2**61
    df = _frame(spark, ids, x)
    seeds = x[[3, 70, 150, 220]]
    got = sorted(r["id"] for r in neighbourhood_ids(df, seeds, per_seed=20).collect())
    want = sorted(ids[neighbourhood_sample(ids, x, seeds, size=80)].tolist())
    assert got == want and len(got) <= 80

    views = [
        View(anchors=np.array([0, 1, 2]), bandwidth_left=0.7, bandwidth_right=0.7),
        View(anchors=np.array([1, 3]), bandwidth_left=0.9, bandwidth_right=0.9),
    ]
    anchors = x[[3, 70, 150, 220]]
    backend = SparkBackend.__new__(SparkBackend)  # only _column_means is exercised: it needs no state
    spark_means = backend._column_means(df, "left", anchors, views)
    counts, sums = view_kernel_sums(x, anchors, views, "left")
    for a, b in zip(spark_means, view_column_means(counts, sums, views), strict=True):
        np.testing.assert_array_equal(a, b)
