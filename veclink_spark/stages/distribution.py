"""Distribution stage: the take-off's 'distribution' initialisation (``refine.init``) on executors.

:func:`sample_keys` gives every row its sample key (:func:`veclink_spark.kernels.samples.sample_keys`, a
hash of the id), so the driver can take a table's sample as the rows of smallest key, the same rows the
in-process reference takes. :func:`descriptors` maps every row to its similarity-distribution
descriptor against that sample (:func:`veclink_spark.kernels.signatures.distribution_descriptors`); the sample
travels to the executors inside the UDF's closure (``backends.base.INIT_SAMPLE`` rows x dim floats).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame

from ..constants import ID
from ..kernels import samples
from ..kernels.signatures import distribution_descriptors
from .signatures import map_vectors

SAMPLE_KEY = "sample_key"


def sample_keys(df: DataFrame, salt: int = 0) -> DataFrame:
    """Rows (id, sample_key long): the id's sample key (:func:`veclink_spark.kernels.samples.sample_keys`)."""
    id_type = df.schema[ID].dataType.simpleString()

    def udf(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            ids = batch.column(ID)
            keys = samples.sample_keys(ids.to_numpy(zero_copy_only=False), salt)
            yield pa.RecordBatch.from_arrays([ids, pa.array(keys, pa.int64())], names=[ID, SAMPLE_KEY])

    return df.select(ID).mapInArrow(udf, f"{ID} {id_type}, {SAMPLE_KEY} long")


def descriptors(df: DataFrame, sample_ids: np.ndarray, sample: np.ndarray, quantiles: int) -> DataFrame:
    """The table (id, vector array<double>) with every vector replaced by its descriptor."""
    ref = np.asarray(sample, dtype=np.float64)
    ref_ids = np.asarray(sample_ids)
    q = int(quantiles)
    return map_vectors(
        df,
        lambda ids, x: distribution_descriptors(x, ids.to_numpy(zero_copy_only=False), ref, ref_ids, q),
    )
