"""Centring stage: a table's mean unit vector, and the table with that mean subtracted.

Both run on executors through ``mapInArrow``: :func:`unit_sums` gives one row per Arrow batch (row
count, sum of the batch's unit vectors), which the driver adds up into the mean
(:func:`veclink_spark.kernels.centre.table_mean`); :func:`centred` subtracts it from every row
(:func:`veclink_spark.kernels.centre.centre_rows`, shared with the in-process reference). The centred vectors
are float32 (half the memory of the persisted tables); the in-process engine rounds them alike
(:func:`veclink_spark.kernels.centre.centred_table`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame

from ..constants import ID, VECTOR
from ..kernels.centre import centre_rows
from .signatures import batch_vectors, map_vectors


def unit_sums(df: DataFrame, dim: int) -> DataFrame:
    """Rows (n long, total array<double> of length ``dim``): per Arrow batch, sum of its unit vectors."""
    d = int(dim)

    def udf(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            _, x = batch_vectors(batch)
            total = x.sum(axis=0)
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array([batch.num_rows], pa.int64()),
                    pa.ListArray.from_arrays(pa.array([0, d], pa.int32()), pa.array(total, pa.float64())),
                ],
                names=["n", "total"],
            )

    return df.select(ID, VECTOR).mapInArrow(udf, "n long, total array<double>")


def centred(df: DataFrame, mean: np.ndarray) -> DataFrame:
    """The table (id, vector array<float>) with every unit vector minus ``mean``."""
    mu = np.asarray(mean, dtype=np.float64)
    return map_vectors(df, lambda ids, x: centre_rows(x, mu), element="float")
