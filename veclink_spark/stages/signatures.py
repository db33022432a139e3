"""Signature stage: anchor-distance signatures and blocking keys, computed on executors.

Runs on executors through ``mapInArrow``: each Arrow batch of (id, vector) rows becomes rows
(view, key, id, dist, sig). Everything the UDF needs (anchor vectors of this side, the views with their
bandwidths, the maps and cells of a refine round) is computed on the driver and captured as plain numpy
arrays; PySpark ships the pickled function with the tasks and broadcasts it automatically when large.
The numeric work is :func:`veclink_spark.kernels.signatures.geh_signature_rows` /
:func:`veclink_spark.kernels.signatures.refine_signature_rows`, shared with the in-process reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.types import DataType

from ..constants import ID, KEY, VECTOR, VIEW
from ..kernels.centre import normalise_rows
from ..kernels.signatures import (
    SignatureRows,
    View,
    geh_signature_rows,
    refine_right_rows,
    refine_signature_rows,
    view_kernel_sums,
)


def signature_schema(id_type: DataType, sig_type: str = "double") -> str:
    """DDL schema of signature rows for an id column of type ``id_type`` (signatures of ``sig_type``:
    double for the published loop's, float for a refine round's mapped vectors)."""
    return f"{VIEW} int, {KEY} int, {ID} {id_type.simpleString()}, dist double, sig array<{sig_type}>"


def batch_vectors(batch: pa.RecordBatch) -> tuple[pa.Array, np.ndarray]:
    """The (id, vector) batch's id column and its vectors as float64 unit rows."""
    vec = batch.column(VECTOR)
    n = len(vec)
    flat = vec.flatten().to_numpy(zero_copy_only=False)
    dim = len(flat) // n if n else 0
    # Re-normalised in float64 here, as the reference does, so both see bit-identical unit vectors.
    return batch.column(ID), normalise_rows(np.asarray(flat, dtype=np.float64).reshape(n, dim))


def map_batches(
    df: DataFrame, fn: Callable[[pa.Array, np.ndarray], pa.RecordBatch], schema: str
) -> DataFrame:
    """Rows of ``schema``: ``fn(ids, unit vectors)`` of every non-empty Arrow batch of the table (id,
    vector), on executors via ``mapInArrow``."""

    def udf(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows:
                yield fn(*batch_vectors(batch))

    return df.select(ID, VECTOR).mapInArrow(udf, schema)


def map_vectors(
    df: DataFrame, fn: Callable[[pa.Array, np.ndarray], np.ndarray], element: str = "double"
) -> DataFrame:
    """The table (id, vector array<``element``>) with every batch's unit vectors replaced by
    ``fn(ids, vectors)`` (one output row per input row, in order), on executors via ``mapInArrow``."""
    id_type = df.schema[ID].dataType.simpleString()
    arrow_type = pa.float32() if element == "float" else pa.float64()

    def mapped(ids: pa.Array, x: np.ndarray) -> pa.RecordBatch:
        y = fn(ids, x)
        offsets = np.arange(len(y) + 1, dtype=np.int32) * y.shape[1]
        values = pa.array(y.reshape(-1).astype(arrow_type.to_pandas_dtype()), arrow_type)
        return pa.RecordBatch.from_arrays(
            [ids, pa.ListArray.from_arrays(pa.array(offsets), values)], names=[ID, VECTOR]
        )

    return map_batches(df, mapped, f"{ID} {id_type}, {VECTOR} array<{element}>")


def _rows_to_batch(ids: pa.Array, rows: SignatureRows, widths: np.ndarray | None) -> pa.RecordBatch:
    n = len(rows.row)
    sig = rows.sig
    if widths is None:
        width = sig.shape[1] if n else 0
        offsets = np.arange(n + 1, dtype=np.int32) * width
        values = sig.reshape(-1)
    else:  # drop the zero padding: each row keeps its own view's width
        w = widths[rows.view] if n else np.zeros(0, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(w)]).astype(np.int32)
        mask = np.arange(sig.shape[1])[None, :] < w[:, None] if n else np.zeros((0, 0), dtype=bool)
        values = sig[mask]
    return pa.RecordBatch.from_arrays(
        [
            pa.array(rows.view, pa.int32()),
            pa.array(rows.key, pa.int32()),
            ids.take(pa.array(rows.row)),
            pa.array(rows.dist, pa.float64()),
            pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values)),
        ],
        names=[VIEW, KEY, ID, "dist", "sig"],
    )


def _map(
    df: DataFrame,
    fn: Callable[[np.ndarray], SignatureRows],
    widths: np.ndarray | None,
    sig_type: str = "double",
) -> DataFrame:
    id_type = df.schema[ID].dataType

    def udf(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            ids, x = batch_vectors(batch)
            yield _rows_to_batch(ids, fn(x), widths)

    return df.select(ID, VECTOR).mapInArrow(udf, signature_schema(id_type, sig_type))


def geh_signatures(
    df: DataFrame,
    side: str,
    anchor_vectors: np.ndarray,
    views: list[View],
    *,
    probes: int,
    centering: str,
    column_means: list[np.ndarray] | None = None,
) -> DataFrame:
    """Signature rows of one side for every view of a ``geh`` round (see module doc); ``column_means``
    (from :func:`geh_kernel_sums`) for ``centering`` ``anchor``."""
    anchors = np.asarray(anchor_vectors, dtype=np.float64)
    views = list(views)
    widths = np.asarray([len(v.anchors) for v in views], dtype=np.int64)
    means = None if column_means is None else [np.asarray(m, dtype=np.float64) for m in column_means]

    def fn(x: np.ndarray) -> SignatureRows:
        return geh_signature_rows(
            x,
            anchors,
            views,
            side,
            probes=probes,
            centering=centering,
            column_means=means,
        )

    return _map(df, fn, widths)


def geh_kernel_sums(
    df: DataFrame,
    side: str,
    anchor_vectors: np.ndarray,
    views: list[View],
) -> DataFrame:
    """Rows (view int, n long, total array<double>): per Arrow batch and view, the number of rows and
    the sum of their kernel values per anchor (:func:`veclink_spark.kernels.signatures.view_kernel_sums`);
    the driver adds them up into the ``anchor`` centring means. Runs on executors."""
    anchors = np.asarray(anchor_vectors, dtype=np.float64)
    views = list(views)
    widths = np.asarray([len(v.anchors) for v in views], dtype=np.int64)

    def udf(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            _, x = batch_vectors(batch)
            counts, sums = view_kernel_sums(x, anchors, views, side)
            offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int32)
            values = (
                np.concatenate([sums[vi, :w] for vi, w in enumerate(widths)]) if len(widths) else np.zeros(0)
            )
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(np.arange(len(views), dtype=np.int32)),
                    pa.array(counts, pa.int64()),
                    pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.float64())),
                ],
                names=[VIEW, "n", "total"],
            )

    return df.select(ID, VECTOR).mapInArrow(udf, f"{VIEW} int, n long, total array<double>")


def refine_signatures(
    df: DataFrame,
    side: str,
    maps: np.ndarray,
    centroids: np.ndarray,
    *,
    probes: int,
) -> DataFrame:
    """Mapped (left) or plain (right) vectors keyed by their nearest cells, for every bagged map."""
    maps = np.asarray(maps, dtype=np.float64)
    cells = np.asarray(centroids, dtype=np.float64)

    def fn(x: np.ndarray) -> SignatureRows:
        if side == "left":
            return refine_signature_rows(x, maps, cells, probes=probes)
        return refine_right_rows(x, len(maps), cells, probes=probes)

    return _map(df, fn, None, "float")
