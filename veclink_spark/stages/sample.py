"""Sample stage: the fit sample of a table, the rows nearest the seeds (on executors, then a window).

Each row's nearest seed and similarity come from :func:`veclink_spark.kernels.samples.nearest_seed` in an
Arrow UDF; a window per seed ranks its rows by similarity (then id) and keeps the first ``per_seed``: the same
rows as :func:`veclink_spark.kernels.samples.neighbourhood_sample` in the in-process engine.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ..constants import ID
from ..kernels.samples import nearest_seed
from .signatures import map_batches


def neighbourhood_ids(df: DataFrame, seed_vectors: np.ndarray, per_seed: int) -> DataFrame:
    """Rows (id) of the ``per_seed`` rows nearest each seed among the rows whose nearest seed it is."""
    seeds = np.asarray(seed_vectors, dtype=np.float64)
    id_type = df.schema[ID].dataType.simpleString()

    def nearest(ids: pa.Array, x: np.ndarray) -> pa.RecordBatch:
        near, sim = nearest_seed(x, seeds)
        columns = [ids, pa.array(near, pa.int32()), pa.array(sim, pa.float64())]
        return pa.RecordBatch.from_arrays(columns, names=[ID, "seed", "sim"])

    near = map_batches(df, nearest, f"{ID} {id_type}, seed int, sim double")
    rank = F.row_number().over(Window.partitionBy("seed").orderBy(F.col("sim").desc(), F.col(ID)))
    return near.withColumn("_rank", rank).filter(F.col("_rank") <= int(per_seed)).select(ID)
