"""Mutual-nearest-neighbour stage: per view, pairs that are each other's best match.

A vector sits in several blocks (its ``probes`` keys); across them it keeps its highest-similarity
match, ties going to the smaller id, exactly as :func:`veclink_spark.backends.in_process.mutual_nearest`
(a full-table round's similarity: CSLS with each row's largest r over its blocks, ``crowded``).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ..constants import LEFT_ID, RIGHT_ID, SIM, VIEW
from ..kernels.centre import SIM_DECIMALS


def _csls(cos: Column, r_left: Column, r_right: Column) -> Column:
    """:func:`veclink_spark.kernels.maps.csls_score` in SQL: the same double operations and rounding."""
    scale = float(10**SIM_DECIMALS)
    return F.rint(((F.lit(2.0) * cos - r_left) - r_right) * F.lit(scale)) / F.lit(scale)


def _largest_r_scored(pairs: DataFrame, best: DataFrame) -> DataFrame:
    """``pairs`` (view, left_id, right_id, cos, ...) with ``sim``: each pair's CSLS with each row's
    largest r over its blocks of the view, read from ``best`` (the rows 'L' for the left rows' r, 'R' for
    the right rows'); pairs one of whose rows has no r there are left out. As
    :func:`veclink_spark.backends.in_process._largest_r_scored`."""
    rl = best.filter(F.col("dir") == "L").groupBy(VIEW, LEFT_ID).agg(F.max("r").alias("_rl"))
    rr = best.filter(F.col("dir") == "R").groupBy(VIEW, RIGHT_ID).agg(F.max("r").alias("_rr"))
    scored = pairs.join(rl, [VIEW, LEFT_ID]).join(rr, [VIEW, RIGHT_ID])
    return scored.withColumn(SIM, _csls(F.col("cos"), F.col("_rl"), F.col("_rr")))


def mutual_nearest_pairs(best: DataFrame, rescore: bool = False, crowded: bool = False) -> DataFrame:
    """Rows (view, left_id, right_id, sim) of the per-view mutual nearest neighbours.

    ``rescore`` (a refine round's :func:`veclink_spark.stages.candidates.csls_best` rows, with r and
    cos): a pair's sim is its CSLS with each row's largest r over its blocks of the view
    (:func:`veclink_spark.kernels.maps.csls_score`), as :func:`veclink_spark.backends.in_process.rescored`.
    ``crowded`` (with ``rescore``): each row's match across its blocks is chosen by that score too, as
    :func:`veclink_spark.backends.in_process.crowded_mutual_nearest` (where the reason is).
    """
    if rescore and crowded:
        scored = _largest_r_scored(best.drop(SIM), best)
        return _mutual(scored.select(VIEW, LEFT_ID, RIGHT_ID, SIM, "dir"))
    if rescore:
        pairs = _mutual(best, keep_cos=True).drop(SIM)
        return _largest_r_scored(pairs, best).select(VIEW, LEFT_ID, RIGHT_ID, SIM)
    return _mutual(best)


def _mutual(best: DataFrame, keep_cos: bool = False) -> DataFrame:
    """Each row's highest-sim match across its blocks (ties: the smaller id), kept where mutual: rows
    (view, left_id, right_id, sim), and the pair's cos with ``keep_cos``."""
    wl = Window.partitionBy(VIEW, LEFT_ID).orderBy(F.col(SIM).desc(), F.col(RIGHT_ID).asc())
    wr = Window.partitionBy(VIEW, RIGHT_ID).orderBy(F.col(SIM).desc(), F.col(LEFT_ID).asc())
    extra = [F.col("cos")] if keep_cos else []
    lb = (
        best.filter(F.col("dir") == "L")
        .select(VIEW, LEFT_ID, RIGHT_ID, SIM, F.row_number().over(wl).alias("_rn"), *extra)
        .filter(F.col("_rn") == 1)
        .drop("_rn")
    )
    rb = (
        best.filter(F.col("dir") == "R")
        .select(VIEW, LEFT_ID, RIGHT_ID, F.row_number().over(wr).alias("_rn"))
        .filter(F.col("_rn") == 1)
        .drop("_rn")
    )
    return lb.join(rb, [VIEW, LEFT_ID, RIGHT_ID])
