"""Nearest-row stage: each of a few query vectors' most similar row of a table, found exactly.

Each Arrow batch gives its best row per query (:func:`veclink_spark.kernels.search.best_rows`, the
kernel the in-process backend runs on the whole table); a window per query keeps the best of the
batches' (highest similarity, then smallest id), so both engines find the same rows. The queries
travel to every executor with the function (a couple of thousand vectors: a few MB).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ..constants import ID
from ..kernels.search import best_rows
from .signatures import map_batches


def nearest_rows(df: DataFrame, queries: np.ndarray) -> DataFrame:
    """Rows (q, id): for each query (its position ``q`` in ``queries``) the id of its most similar row
    of ``df`` (id, vector), by inner product of unit vectors; queries of an empty table are missing."""
    q = np.asarray(queries, dtype=np.float64)
    id_type = df.schema[ID].dataType.simpleString()

    def best(ids: pa.Array, x: np.ndarray) -> pa.RecordBatch:
        at, sim = best_rows(ids.to_numpy(zero_copy_only=False), x, q)
        columns = [pa.array(np.arange(len(q)), pa.int32()), ids.take(pa.array(at)), pa.array(sim)]
        return pa.RecordBatch.from_arrays(columns, names=["q", ID, "sim"])

    found = map_batches(df, best, f"q int, {ID} {id_type}, sim double")
    rank = F.row_number().over(Window.partitionBy("q").orderBy(F.col("sim").desc(), F.col(ID)))
    return found.withColumn("_rank", rank).filter(F.col("_rank") == 1).select("q", ID)
