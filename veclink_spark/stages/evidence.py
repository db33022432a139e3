"""Evidence stage: each view is one Bernoulli trial per pair; votes are counted and accumulated.

The Beta(alpha + votes, beta + views - votes) posterior itself is a function of these counts, computed
where it is needed (promotion on the driver, the output table).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..constants import LEFT_ID, RIGHT_ID


def round_votes(mnn: DataFrame) -> DataFrame:
    """Rows (left_id, right_id, round_votes, sim): in how many of the round's views the pair was mutual
    NN, and its best similarity among them."""
    return mnn.groupBy(LEFT_ID, RIGHT_ID).agg(
        F.count("*").cast("long").alias("round_votes"), F.max("sim").alias("sim")
    )


def accumulate(votes: DataFrame, previous: DataFrame | None) -> DataFrame:
    """Rows (left_id, right_id, round_votes, cum_votes): this round's votes plus the phase's earlier ones.

    ``previous`` has (left_id, right_id, cum_votes) of the last round, or is None at a phase start.
    Pairs not proposed this round keep their cumulative votes with round_votes 0 (and a null sim).
    """
    if previous is None:
        return votes.withColumn("cum_votes", F.col("round_votes"))
    prev = previous.select(LEFT_ID, RIGHT_ID, F.col("cum_votes").alias("_prev"))
    return votes.join(prev, [LEFT_ID, RIGHT_ID], "full_outer").select(
        LEFT_ID,
        RIGHT_ID,
        F.coalesce(F.col("round_votes"), F.lit(0)).cast("long").alias("round_votes"),
        F.col("sim"),
        (F.coalesce(F.col("round_votes"), F.lit(0)) + F.coalesce(F.col("_prev"), F.lit(0)))
        .cast("long")
        .alias("cum_votes"),
    )


def eligible(table: DataFrame, exclude: DataFrame) -> DataFrame:
    """Pairs proposed this round (round_votes > 0) that touch no excluded id.

    ``exclude`` has columns (left_id, right_id) of the pairs whose ids are taken (anchors or seeds).
    """
    proposed = table.filter(F.col("round_votes") > 0)
    return proposed.join(exclude.select(LEFT_ID).distinct(), LEFT_ID, "left_anti").join(
        exclude.select(RIGHT_ID).distinct(), RIGHT_ID, "left_anti"
    )


def vote_cells(table: DataFrame) -> DataFrame:
    """Joint histogram (round_votes, cum_votes, n): the small aggregate the Otsu threshold needs."""
    return table.groupBy("round_votes", "cum_votes").agg(F.count("*").cast("long").alias("n"))
