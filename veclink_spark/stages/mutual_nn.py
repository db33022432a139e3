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


def mutual_nearest_pairs(best: DataFrame, rescore: bool = False, crowded: bool = False) -> DataFrame:
    """Rows (view, left_id, right_id, sim) of the per-view mutual nearest neighbours.

    ``rescore`` (a refine round's :func:`veclink_spark.stages.candidates.csls_best` rows, with r and
    cos): a pair's sim is its CSLS with each row's largest r over its blocks of the view
    (:func:`veclink_spark.kernels.maps.csls_score`), as :func:`veclink_spark.backends.in_process.rescored`.
    ``crowded`` (with ``rescore``): each row's match across its blocks is chosen by that score too, as
    :func:`veclink_spark.backends.in_process.crowded_mutual_nearest` (where the reason is).
    """
    if rescore and crowded:
        is_l, is_r = F.col("dir") == "L", F.col("dir") == "R"
        rl = best.filter(is_l).groupBy(VIEW, LEFT_ID).agg(F.max("r").alias("_rl"))
        rr = best.filter(is_r).groupBy(VIEW, RIGHT_ID).agg(F.max("r").alias("_rr"))
        scored = (
            best.drop(SIM)
            .join(rl, [VIEW, LEFT_ID])
            .join(rr, [VIEW, RIGHT_ID])
            .withColumn(SIM, _csls(F.col("cos"), F.col("_rl"), F.col("_rr")))
        )
        return mutual_nearest_pairs(scored.select(VIEW, LEFT_ID, RIGHT_ID, SIM, "dir"))
    wl = Window.partitionBy(VIEW, LEFT_ID).orderBy(F.col(SIM).desc(), F.col(RIGHT_ID).asc())
    wr = Window.partitionBy(VIEW, RIGHT_ID).orderBy(F.col(SIM).desc(), F.col(LEFT_ID).asc())
    extra_l: list[Column] = []
    extra_r: list[Column] = []
    if rescore:
        extra_l = [F.max("r").over(Window.partitionBy(VIEW, LEFT_ID)).alias("_rl"), F.col("cos")]
        extra_r = [F.max("r").over(Window.partitionBy(VIEW, RIGHT_ID)).alias("_rr")]
    lb = (
        best.filter(F.col("dir") == "L")
        .select(VIEW, LEFT_ID, RIGHT_ID, SIM, F.row_number().over(wl).alias("_rn"), *extra_l)
        .filter(F.col("_rn") == 1)
        .drop("_rn")
    )
    rb = (
        best.filter(F.col("dir") == "R")
        .select(VIEW, LEFT_ID, RIGHT_ID, F.row_number().over(wr).alias("_rn"), *extra_r)
        .filter(F.col("_rn") == 1)
        .drop("_rn")
    )
    pairs = lb.join(rb, [VIEW, LEFT_ID, RIGHT_ID])
    if not rescore:
        return pairs
    return pairs.select(VIEW, LEFT_ID, RIGHT_ID, _csls(F.col("cos"), F.col("_rl"), F.col("_rr")).alias(SIM))
