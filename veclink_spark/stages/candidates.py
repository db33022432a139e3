"""Candidate stage: the two sides meet on (view, key) and each block proposes its best matches.

Blocking is an equi-join on (view, key), done as a co-group (``groupBy(view, key).cogroup(...)``) so that
each block is scored as one vectorised matrix product inside an executor
(:func:`veclink_spark.kernels.blocking.block_matches`) and only each vector's best match per block leaves it.
A plain ``join`` followed by a scoring UDF would materialise every pair of every block (hundreds of
millions of rows on modest tables) only to keep one per row. Oversized blocks are cut to
``backends.base.MAX_BLOCK_SIZE`` members per side, the closest to the block's anchor, inside the same
function; :func:`block_sizes` gives the statistics the driver reports.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DataType

from ..constants import ID, KEY, LEFT_ID, RIGHT_ID, SIM, VIEW
from ..kernels.blocking import block_matches, cap_block
from ..kernels.maps import csls_block


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
        a, ab, asim, b, ba, bsim = block_matches(
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
    return _size_summary(lc.join(rc, [VIEW, KEY]).select(F.greatest("nl", "nr").alias("size")))


def _size_summary(sizes: DataFrame) -> DataFrame:
    """One row (blocks, max_block, mean_block) from one row per block with its ``size``."""
    return sizes.agg(
        F.count("*").alias("blocks"), F.max("size").alias("max_block"), F.avg("size").alias("mean_block")
    )


def _arrow_id_type(ddl: str) -> pa.DataType:
    """The Arrow type of an id column of Spark type ``ddl`` (bigint or string, see inputs)."""
    return pa.int64() if ddl == "bigint" else pa.string()


def _block_arrays(t: pa.Table, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """One side of a block as (ids, signatures (n, width)), cut to the ``cap`` rows closest to the
    block's centre (:func:`veclink_spark.kernels.blocking.cap_block`). The signatures come straight out of the
    Arrow list column as one reshaped buffer (no per-row objects)."""
    ids = t.column(ID).to_numpy()
    sig = t.column("sig").combine_chunks()
    flat = sig.flatten().to_numpy(zero_copy_only=False)
    width = len(flat) // len(ids) if len(ids) else 0
    keep = cap_block(ids, t.column("dist").to_numpy(), cap)
    return ids[keep], flat.reshape(len(ids), width)[keep]


def csls_best(
    left_sigs: DataFrame, right_sigs: DataFrame, k: int, max_block_size: int, keep: float = 1.0, salt: int = 0
) -> DataFrame:
    """A refine round's candidate stage: per block (view, key), every row's best match by CSLS
    (:func:`veclink_spark.kernels.maps.csls_block`, the in-process engine's own code), in one co-group.

    Rows (view, key, left_id, right_id, sim, dir, r, cos, block_size): dir 'L' is a left row's best
    right, 'R' a right row's best left; sim is the CSLS score, r the row's neighbourhood mean in the
    block, cos the pair's similarity, block_size the block's larger side before the cap. Runs as
    ``applyInArrow``: the signatures reach numpy as one buffer per block.
    """
    cap, kk, kp, st = int(max_block_size), int(k), float(keep), int(salt)
    lt, rt = _id_types(left_sigs, right_sigs)
    schema = (
        f"{VIEW} int, {KEY} int, {LEFT_ID} {lt}, {RIGHT_ID} {rt}, {SIM} double, dir string, r double, "
        "cos double, block_size int"
    )
    lat, rat = _arrow_id_type(lt), _arrow_id_type(rt)

    def fn(left: pa.Table, right: pa.Table) -> pa.Table:
        if left.num_rows == 0 or right.num_rows == 0:
            view = key = 0
            e = np.zeros(0, dtype=np.int64)
            b = csls_block(e, np.zeros((0, 1)), e, np.zeros((0, 1)), kk)
        else:
            view, key = left.column(VIEW)[0].as_py(), left.column(KEY)[0].as_py()
            il, sl = _block_arrays(left, cap)
            ir, sr = _block_arrays(right, cap)
            b = csls_block(il, sl, ir, sr, kk, kp, st)
        n_l, n_r = len(b.left), len(b.right)
        n = n_l + n_r
        return pa.table(
            {
                VIEW: pa.array(np.full(n, view, dtype=np.int32)),
                KEY: pa.array(np.full(n, key, dtype=np.int32)),
                LEFT_ID: pa.concat_arrays([pa.array(b.left, lat), pa.array(b.right_best, lat)]),
                RIGHT_ID: pa.concat_arrays([pa.array(b.left_best, rat), pa.array(b.right, rat)]),
                SIM: pa.array(np.concatenate([b.left_score, b.right_score]), pa.float64()),
                "dir": pa.array(["L"] * n_l + ["R"] * n_r, pa.string()),
                "r": pa.array(np.concatenate([b.left_r, b.right_r]), pa.float64()),
                "cos": pa.array(np.concatenate([b.left_cos, b.right_cos]), pa.float64()),
                "block_size": pa.array(np.full(n, max(left.num_rows, right.num_rows), dtype=np.int32)),
            }
        )

    return left_sigs.groupBy(VIEW, KEY).cogroup(right_sigs.groupBy(VIEW, KEY)).applyInArrow(fn, schema)


def best_block_sizes(best: DataFrame) -> DataFrame:
    """:func:`block_sizes` from the rows of :func:`csls_best` (blocks met by both sides)."""
    return _size_summary(best.groupBy(VIEW, KEY).agg(F.max("block_size").alias("size")))


def _id_types(left_sigs: DataFrame, right_sigs: DataFrame) -> tuple[str, str]:
    return left_sigs.schema[ID].dataType.simpleString(), right_sigs.schema[ID].dataType.simpleString()
