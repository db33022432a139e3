"""Mutual-nearest-neighbour stage: per view, pairs that are each other's best match.

A vector sits in several blocks (its ``probes`` keys); across them it keeps its highest-similarity
match, ties going to the smaller id, exactly as :func:`veclink_spark.reference.mutual_nearest`.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ..constants import LEFT_ID, RIGHT_ID, SIM, VIEW


def mutual_nearest_pairs(best: DataFrame) -> DataFrame:
    """Rows (view, left_id, right_id, sim) of the per-view mutual nearest neighbours."""
    wl = Window.partitionBy(VIEW, LEFT_ID).orderBy(F.col(SIM).desc(), F.col(RIGHT_ID).asc())
    wr = Window.partitionBy(VIEW, RIGHT_ID).orderBy(F.col(SIM).desc(), F.col(LEFT_ID).asc())
    lb = (
        best.filter(F.col("dir") == "L")
        .withColumn("_rn", F.row_number().over(wl))
        .filter(F.col("_rn") == 1)
        .select(VIEW, LEFT_ID, RIGHT_ID, SIM)
    )
    rb = (
        best.filter(F.col("dir") == "R")
        .withColumn("_rn", F.row_number().over(wr))
        .filter(F.col("_rn") == 1)
        .select(VIEW, LEFT_ID, RIGHT_ID)
    )
    return lb.join(rb, [VIEW, LEFT_ID, RIGHT_ID])
