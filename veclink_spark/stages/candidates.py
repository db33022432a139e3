"""Candidate stage: the two sides meet on (view, key) and each block proposes its best matches.

Blocking is an equi-join on (view, key), done as a co-group (``groupBy(view, key).cogroup(...)``) so that
each block is scored as one vectorised matrix product inside an executor
(:func:`veclink_spark.kernels.block_matches`) and only each vector's best match per block leaves it.
A plain ``join`` followed by a scoring UDF would materialise every pair of every block (hundreds of
millions of rows on modest tables) only to keep one per row. Oversized blocks are cut to
``hashing.max_block_size`` members per side, the closest to the block's anchor, inside the same function;
:func:`block_sizes` gives the statistics the driver reports.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DataType

from .. import kernels
from ..constants import ID, KEY, LEFT_ID, RIGHT_ID, SIM, VIEW


def best_matches_schema(left_type: DataType, right_type: DataType) -> str:
    """DDL schema of block best-match rows."""
    return (
        f"{VIEW} int, {LEFT_ID} {left_type.simpleString()}, {RIGHT_ID} {right_type.simpleString()}, "
        f"{SIM} double, dir string"
    )


def _empty_best() -> pd.DataFrame:
    # Explicit dtypes: an empty frame of default float64 columns cannot become ids or strings in Arrow.
    return pd.DataFrame(
        {
            VIEW: pd.Series([], dtype="int32"),
            LEFT_ID: pd.Series([], dtype=object),
            RIGHT_ID: pd.Series([], dtype=object),
            SIM: pd.Series([], dtype="float64"),
            "dir": pd.Series([], dtype=object),
        }
    )


def _best_frame(
    view: int,
    left: np.ndarray,
    left_best: np.ndarray,
    left_sim: np.ndarray,
    right: np.ndarray,
    right_best: np.ndarray,
    right_sim: np.ndarray,
) -> pd.DataFrame:
    """One block's best-match rows: each left's best right (dir 'L'), each right's best left ('R')."""
    return pd.concat(
        [
            pd.DataFrame(
                {
                    VIEW: np.full(len(left), view, dtype=np.int32),
                    LEFT_ID: left,
                    RIGHT_ID: left_best,
                    SIM: left_sim,
                    "dir": "L",
                }
            ),
            pd.DataFrame(
                {
                    VIEW: np.full(len(right), view, dtype=np.int32),
                    LEFT_ID: right_best,
                    RIGHT_ID: right,
                    SIM: right_sim,
                    "dir": "R",
                }
            ),
        ],
        ignore_index=True,
    )


def block_best_matches(left_sigs: DataFrame, right_sigs: DataFrame, max_block_size: int) -> DataFrame:
    """Rows (view, left_id, right_id, sim, dir): dir 'L' is a left vector's best right in a block, 'R' a
    right vector's best left."""
    cap = int(max_block_size)

    def score_block(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
        if len(left) == 0 or len(right) == 0:
            return _empty_best()
        view = int(left[VIEW].iloc[0])
        a, ab, asim, b, ba, bsim = kernels.block_matches(
            left[ID].to_numpy(),
            np.stack(left["sig"].to_numpy()),
            left["dist"].to_numpy(),
            right[ID].to_numpy(),
            np.stack(right["sig"].to_numpy()),
            right["dist"].to_numpy(),
            cap,
        )
        return _best_frame(view, a, ab, asim, b, ba, bsim)

    schema = best_matches_schema(left_sigs.schema[ID].dataType, right_sigs.schema[ID].dataType)
    return (
        left_sigs.groupBy(VIEW, KEY).cogroup(right_sigs.groupBy(VIEW, KEY)).applyInPandas(score_block, schema)
    )


def block_sizes(left_sigs: DataFrame, right_sigs: DataFrame) -> DataFrame:
    """One row: number of blocks met by both sides, and max / mean block size (larger side)."""
    lc = left_sigs.groupBy(VIEW, KEY).agg(F.count("*").alias("nl"))
    rc = right_sigs.groupBy(VIEW, KEY).agg(F.count("*").alias("nr"))
    both = lc.join(rc, [VIEW, KEY]).select(F.greatest("nl", "nr").alias("size"))
    return both.agg(
        F.count("*").alias("blocks"), F.max("size").alias("max_block"), F.avg("size").alias("mean_block")
    )


def _id_types(left_sigs: DataFrame, right_sigs: DataFrame) -> tuple[str, str]:
    return left_sigs.schema[ID].dataType.simpleString(), right_sigs.schema[ID].dataType.simpleString()


def block_topk(left_sigs: DataFrame, right_sigs: DataFrame, k: int, max_block_size: int) -> DataFrame:
    """CSLS pass 1: per block, each vector's ``k`` best similarities to the other side.

    Rows (view, side 'L'/'R', left_id, right_id, topk array<double>): a left row has right_id null and
    a right row left_id null (the two sides' ids may have different types).
    """
    cap, kk = int(max_block_size), int(k)
    lt, rt = _id_types(left_sigs, right_sigs)

    def fn(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
        if len(left) == 0 or len(right) == 0:
            return pd.DataFrame(
                {
                    VIEW: pd.Series([], dtype="int32"),
                    "side": pd.Series([], dtype=object),
                    LEFT_ID: pd.Series([], dtype=object),
                    RIGHT_ID: pd.Series([], dtype=object),
                    "topk": pd.Series([], dtype=object),
                }
            )
        view = int(left[VIEW].iloc[0])
        il, ir = left[ID].to_numpy(), right[ID].to_numpy()
        kl = kernels.cap_block(il, left["dist"].to_numpy(), cap)
        kr = kernels.cap_block(ir, right["dist"].to_numpy(), cap)
        sl, sr = np.stack(left["sig"].to_numpy())[kl], np.stack(right["sig"].to_numpy())[kr]
        tl, tr = kernels.block_topk(sl, sr, kk)
        return pd.DataFrame(
            {
                VIEW: np.full(len(kl) + len(kr), view, dtype=np.int32),
                "side": ["L"] * len(kl) + ["R"] * len(kr),
                # object Series: a list of ints and None would become float64 (ids above 2^53 lose bits)
                LEFT_ID: pd.Series(il[kl].tolist() + [None] * len(kr), dtype=object),
                RIGHT_ID: pd.Series([None] * len(kl) + ir[kr].tolist(), dtype=object),
                "topk": list(tl) + list(tr),
            }
        )

    schema = f"{VIEW} int, side string, {LEFT_ID} {lt}, {RIGHT_ID} {rt}, topk array<double>"
    return left_sigs.groupBy(VIEW, KEY).cogroup(right_sigs.groupBy(VIEW, KEY)).applyInPandas(fn, schema)


def csls_means(topk_rows: DataFrame, side: str, k: int) -> DataFrame:
    """CSLS pass 2: per (view, vector) of one side ('L' or 'R'), r_k = the mean of its ``k`` best
    similarities over all its blocks.

    Rows (view, id, r). The merge runs in a vectorised pandas UDF calling
    :func:`veclink_spark.kernels.merge_topk`, the reference's own code, so the means agree bit for bit.
    Each side gets its own projection (not two filters of one) so that joining both back is unambiguous.
    """
    kk = int(k)
    id_col = LEFT_ID if side == "L" else RIGHT_ID

    @F.pandas_udf("double")  # type: ignore[call-overload]
    def merge(lists: pd.Series) -> pd.Series:
        return pd.Series([kernels.merge_topk([np.asarray(v, dtype=np.float64)], kk) for v in lists])

    grouped = (
        topk_rows.filter(F.col("side") == side)
        .groupBy(VIEW, id_col)
        .agg(F.flatten(F.collect_list("topk")).alias("_all"))
    )
    return grouped.select(VIEW, F.col(id_col).alias(ID), merge("_all").alias("r"))


def csls_best_matches(
    left_sigs: DataFrame, right_sigs: DataFrame, max_block_size: int, keep: float = 1.0, salt: int = 0
) -> DataFrame:
    """CSLS pass 3: like :func:`block_best_matches` but ranked by CSLS; the sides carry their r column.

    ``keep`` < 1 drops pairs by :func:`veclink_spark.kernels.keep_mask` (stochastic induction).
    Rows (view, left_id, right_id, sim, dir) where sim is the CSLS score.
    """
    cap, kp, st = int(max_block_size), float(keep), int(salt)

    def fn(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
        if len(left) == 0 or len(right) == 0:
            return _empty_best()
        view = int(left[VIEW].iloc[0])
        il, ir = left[ID].to_numpy(), right[ID].to_numpy()
        kl = kernels.cap_block(il, left["dist"].to_numpy(), cap)
        kr = kernels.cap_block(ir, right["dist"].to_numpy(), cap)
        sl, sr = np.stack(left["sig"].to_numpy())[kl], np.stack(right["sig"].to_numpy())[kr]
        a, ab, asim, _, b, ba, bsim, _ = kernels.csls_block_matches(
            il[kl], sl, left["r"].to_numpy()[kl], ir[kr], sr, right["r"].to_numpy()[kr], kp, st
        )
        return _best_frame(view, a, ab, asim, b, ba, bsim)

    schema = best_matches_schema(left_sigs.schema[ID].dataType, right_sigs.schema[ID].dataType)
    return left_sigs.groupBy(VIEW, KEY).cogroup(right_sigs.groupBy(VIEW, KEY)).applyInPandas(fn, schema)
