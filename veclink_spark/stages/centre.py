"""Centring stage: the table with its mean unit vector subtracted.

The mean comes from the validation's pass over the vectors (:func:`veclink_spark.inputs.validate`
adds up per-batch sums of the unit vectors into :func:`veclink_spark.kernels.centre.table_mean`);
:func:`centred` subtracts it from every row on executors through ``mapInArrow``
(:func:`veclink_spark.kernels.centre.centre_rows`, shared with the in-process reference). The centred vectors
are float32 (half the memory of the persisted tables); the in-process engine rounds them alike
(:func:`veclink_spark.kernels.centre.centred_table`).
"""

from __future__ import annotations

import numpy as np
from pyspark.sql import DataFrame

from ..kernels.centre import centre_rows
from .signatures import map_vectors


def centred(df: DataFrame, mean: np.ndarray) -> DataFrame:
    """The table (id, vector array<float>) with every unit vector minus ``mean``."""
    mu = np.asarray(mean, dtype=np.float64)
    return map_vectors(df, lambda ids, x: centre_rows(x, mu), element="float")
