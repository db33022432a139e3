"""Reading and validating the linker's input tables: left and right embeddings, and the seed pairs.

Inputs:

* **left** and **right** embedding tables: a Delta folder, a Parquet file or folder, or a catalog table
  name, with an id column (integer or string) and a vector column (``array<float>`` or
  ``array<double>``; the two sides may have different dimensions);
* **seeds**: known pairs, columns ``left_id`` and ``right_id`` (Delta, Parquet, CSV, or a catalog table).

The usual flow is :func:`load_inputs`, which chains :func:`read_table` (per table), :func:`validate`
(all value checks, every problem reported at once), :func:`load_embeddings` and :func:`load_seeds`.

Everything here runs on the driver and only builds DataFrames or runs small aggregates (the per-vector
work in Arrow UDFs on executors): no table is collected, nothing is written.

Example::

    inputs = load_inputs(spark, "/data/a_delta", "/data/b.parquet", "/data/seeds.csv")
    inputs.left.columns        # ['id', 'vector'], vectors unit-norm array<float>
    inputs.summary.n_seeds     # 20
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .constants import ID, LEFT_ID, RIGHT_ID, VECTOR
from .encoders import vectors_to_arrow
from .errors import InputError
from .kernels.centre import normalise_rows, table_mean

log = logging.getLogger(__name__)

#: Roles a table can play; used in every message.
ROLES = ("left", "right", "seeds", "new", "existing", "against", "answers", "texts_left", "texts_right")
#: How many example values a message quotes (duplicate ids, unknown seed ids...).
MAX_EXAMPLES = 5
#: How many files of a folder are looked at to tell its format.
_MAX_FILES_PROBED = 200
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_STRING = (T.StringType, T.CharType, T.VarcharType)
_FLOATING = (T.FloatType, T.DoubleType)
#: Bytes a row takes besides its vector's elements (id, array header, row overhead), to size partitions.
_ROW_OVERHEAD_BYTES = 32
#: An input partition larger than this many times the target size (``spark.sql.files.maxPartitionBytes``)
#: is cut (:func:`partitions_for`): Spark's own file splits stay as they are, one huge row group does not.
_OVERSIZE = 2.0
#: Share of a task's heap that the row groups read at once may take. Parquet readers hold a row group's
#: column chunks whole: with one row group a side at 300,000 rows (0.92 + 0.46 GB, read together by
#: the validation), a 2,400 MB heap (a share of 0.55) read, cut and cached them and a 1,700 MB heap
#: (0.78) ran out of heap in the Parquet reader. A million rows a side in 8 GiB is 0.54.
_ROW_GROUP_HEAP_SHARE = 0.6


@dataclass(frozen=True)
class InputColumns:
    """Names of the input columns, as they appear in the user's tables.

    Attributes:
        left_id: id column of the left embedding table.
        left_vector: vector column of the left embedding table.
        right_id: id column of the right embedding table.
        right_vector: vector column of the right embedding table.
        seeds_left: column of the seeds table holding left ids.
        seeds_right: column of the seeds table holding right ids.
    """

    left_id: str = "id"
    left_vector: str = "vector"
    right_id: str = "id"
    right_vector: str = "vector"
    seeds_left: str = "left_id"
    seeds_right: str = "right_id"


@dataclass(frozen=True)
class InputSummary:
    """What :func:`validate` measured on valid inputs.

    Attributes:
        n_left: rows of the left table.
        n_right: rows of the right table.
        dim_left: vector dimension of the left table.
        dim_right: vector dimension of the right table.
        n_seeds: seed pairs.
        largest_partition_left: rows of the left table's largest partition as read (how the files
            happen to be laid out, not what they hold: left out of comparisons).
        largest_partition_right: same for the right table.
        mean_left: the mean of the left table's unit vectors (:func:`kernels.centre.table_mean`),
            measured by the validation's pass over the vectors (the job centres on it).
        mean_right: same for the right table.
    """

    n_left: int
    n_right: int
    dim_left: int
    dim_right: int
    n_seeds: int
    largest_partition_left: int = dataclasses.field(default=0, compare=False)
    largest_partition_right: int = dataclasses.field(default=0, compare=False)
    mean_left: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)
    mean_right: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class LinkerInputs:
    """The three inputs, read, validated and standardised, plus their summary.

    Attributes:
        left: columns ``id`` (bigint or string) and ``vector`` (unit-norm array<float>).
        right: same shape as ``left``.
        seeds: columns ``left_id`` and ``right_id``, typed like ``left.id`` and ``right.id``.
        summary: sizes and dimensions measured by :func:`validate`.
    """

    left: DataFrame
    right: DataFrame
    seeds: DataFrame
    summary: InputSummary


# --------------------------------------------------------------------------------------------------
# Reading


def read_table(spark: SparkSession, location: str, role: str) -> DataFrame:
    """Open one input table by path or catalog name, telling its format from the location.

    * a folder holding ``_delta_log`` -> Delta;
    * a ``.csv`` file or a folder of ``.csv`` files -> CSV with a header row, types inferred (seeds only);
    * a Parquet file or a folder of Parquet files -> Parquet;
    * a name without ``/`` or ``:`` that the catalog knows (``spark.catalog.tableExists``, which also
      sees temporary views) -> ``spark.table``.

    Local paths (no scheme, or ``file:``) are inspected on disk. Other URIs (``s3://``, ``abfss://``,
    ``dbfs:/``...) cannot be listed through DataFrame APIs, so they are told apart by their suffix
    (``.csv``, ``.parquet``) or else opened as Delta first and as Parquet when Spark says the folder
    is not a Delta table (so a remote folder of CSV files is recognised only when its path ends in
    ``.csv``). A relative local path without ``/`` is tried after the catalog.

    Args:
        spark: the active session.
        location: path, URI or catalog table name.
        role: one of :data:`ROLES` (``"new"``, ``"existing"``, ``"against"``: a fitted model's new rows,
            the table they join, the table they are linked against); used in messages (and CSV is
            allowed for seeds only).

    Returns:
        The table as read, with its own column names; nothing is checked beyond opening it.

    Raises:
        InputError: the location does not exist, is not a table, has an unsupported format, or Spark
            cannot open it. The message names the role and the location.
    """
    if role not in ROLES:
        raise InputError(f"read_table: role must be one of {ROLES}, got {role!r}")
    if not isinstance(location, str) or not location.strip():
        raise InputError(
            f"{role} table: no location given; pass a Delta/Parquet path or a catalog table name"
        )
    location = location.strip()

    if "/" not in location and ":" not in location:
        if _catalog_has(spark, location):
            log.info("reading %s table from catalog table %s", role, location)
            return spark.table(location)
        if not Path(location).exists():
            raise InputError(
                f"{role} table {location!r} not found: it is neither a table in the catalog nor an existing "
                "path; give the full table name (catalog.schema.table) or a path to a Delta/Parquet table"
            )

    scheme_match = _SCHEME.match(location)
    if scheme_match is None or scheme_match.group(0).lower() == "file:":
        local = Path(urlparse(location).path) if scheme_match else Path(location)
        fmt = _local_format(local, location, role)
        # Spark resolves relative paths against the JVM's working directory, not Python's: pass it absolute.
        return _load(spark, fmt, location if scheme_match else os.path.abspath(location), role)
    return _read_remote(spark, location, role)


def _catalog_has(spark: SparkSession, name: str) -> bool:
    """True when the catalog (tables and temporary views) knows ``name``."""
    try:
        return bool(spark.catalog.tableExists(name))
    except AnalysisException as exc:
        # A name the parser rejects is not a table; the caller then tries it as a path.
        log.debug("catalog lookup of %r failed: %s", name, exc)
        return False


def _data_files(folder: Path) -> Iterator[Path]:
    """Data files under ``folder`` as Spark sees them: hidden (``.``) and metadata (``_``) entries skipped."""
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).parts
        if any(part.startswith((".", "_")) for part in rel):
            continue
        if path.is_file():
            yield path


def _is_parquet(path: Path) -> bool:
    """Whether a file starts with Parquet's magic bytes (read before Spark, which fails late and long)."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:
        return False


def _local_format(path: Path, location: str, role: str) -> str:
    """Format (``delta``, ``parquet``, ``csv``) of a local file or folder."""
    if not path.exists():
        raise InputError(f"{role} table not found: {location!r} does not exist; check the path")
    if path.is_dir():
        if (path / "_delta_log").is_dir():
            return "delta"
        files = []
        for f in _data_files(path):
            files.append(f)
            if len(files) >= _MAX_FILES_PROBED:
                break
        if not files:
            raise InputError(
                f"{role} table: folder {location!r} holds no data files (and no _delta_log); "
                "point to a Delta table, a Parquet file or folder"
                + (" or CSV files" if role == "seeds" else "")
            )
        fmt = "csv" if all(f.name.lower().endswith(".csv") for f in files) else "parquet"
    else:
        files = [path]
        fmt = "csv" if path.name.lower().endswith(".csv") else "parquet"
    if fmt == "parquet":
        for f in files:
            if not _is_parquet(f):
                raise InputError(
                    f"{role} table {location!r}: {f.name!r} is not a Parquet file (no PAR1 header) and the "
                    "folder is not a Delta table; point to a Delta table or Parquet files only"
                )
    if fmt == "csv" and role != "seeds":
        raise InputError(
            f"{role} table {location!r} is CSV, which is accepted for seeds only; "
            "store embeddings as Delta or Parquet (id column, array<float> vector column)"
        )
    return fmt


def _read_remote(spark: SparkSession, location: str, role: str) -> DataFrame:
    """Open a non-local URI: by suffix, else Delta first and Parquet when it is not a Delta table."""
    lowered = location.rstrip("/").lower()
    if lowered.endswith(".csv"):
        if role != "seeds":
            raise InputError(
                f"{role} table {location!r} is CSV, which is accepted for seeds only; "
                "store embeddings as Delta or Parquet"
            )
        return _load(spark, "csv", location, role)
    if lowered.endswith(".parquet"):
        return _load(spark, "parquet", location, role)
    try:
        df = spark.read.format("delta").load(location)
        df.schema  # noqa: B018 - analysed here also on Spark Connect, where load() is lazy
    except AnalysisException as exc:
        condition = _condition(exc)
        if condition == "PATH_NOT_FOUND":
            raise InputError(f"{role} table not found: {location!r} does not exist; check the path") from exc
        if condition not in (
            "DELTA_TABLE_NOT_FOUND",
            "DELTA_MISSING_DELTA_TABLE",
            "DELTA_PATH_DOES_NOT_EXIST",
        ):
            raise InputError(f"{role} table {location!r}: Spark could not open it as Delta: {exc}") from exc
        log.info("%s is not a Delta table (%s); reading it as Parquet", location, condition)
        return _load(spark, "parquet", location, role)
    log.info("reading %s table %s as delta", role, location)
    return df


def _condition(exc: AnalysisException) -> str | None:
    """Spark's error condition of ``exc`` (``getCondition`` since 4.0)."""
    getter = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    return getter() if getter is not None else None


def _load(spark: SparkSession, fmt: str, location: str, role: str) -> DataFrame:
    """``spark.read`` in ``fmt``, Spark's analysis errors turned into an InputError naming the table."""
    log.info("reading %s table %s as %s", role, location, fmt)
    reader = spark.read.format(fmt)
    if fmt == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true")
    try:
        df = reader.load(location)
        df.schema  # noqa: B018 - analysed here also on Spark Connect, where load() is lazy
    except AnalysisException as exc:
        if _condition(exc) == "PATH_NOT_FOUND":
            raise InputError(f"{role} table not found: {location!r} does not exist; check the path") from exc
        raise InputError(f"{role} table {location!r}: Spark could not read it as {fmt}: {exc}") from exc
    return df


# --------------------------------------------------------------------------------------------------
# Layout: partitions sized by bytes, row groups the heap can hold

_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\s*$", re.IGNORECASE)


def _parse_bytes(text: str) -> int | None:
    """Bytes of a size as Spark and the JVM write it (``134217728b``, ``128MB``, ``8g``, ``2400m``)."""
    match = _BYTES.match(str(text))
    if match is None:
        return None
    power = "kmgtp".find(match.group(2).lower()) + 1 if match.group(2) else 0
    return int(float(match.group(1)) * 1024**power)


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def partitions_for(
    rows: int, dim: int, element_bytes: int, largest_partition: int, target_bytes: int
) -> int | None:
    """How many partitions a table should be cut into, or None when it is read in partitions of a
    sensible size already.

    A row is taken to hold ``dim * element_bytes + 32`` bytes. A table whose largest partition as read
    is more than twice ``target_bytes`` (Spark's ``spark.sql.files.maxPartitionBytes``, 128 MiB by
    default: the size Spark cuts files to when it can) is cut into ``ceil(table bytes /
    target_bytes)`` partitions. Spark splits Parquet files only between row groups, so a file written
    in one row group (pyarrow's and pandas' default up to 1,048,576 rows) arrives as one partition
    whatever its size; Delta tables and folders of many files arrive cut already and are left as read.

    Args:
        rows: rows of the table.
        dim: vector dimension.
        element_bytes: 4 for float vectors, 8 for double.
        largest_partition: rows of the largest partition as read.
        target_bytes: bytes a partition should hold.

    Returns:
        The number of partitions to cut the table into, or None to keep it as read.
    """
    row_bytes = dim * element_bytes + _ROW_OVERHEAD_BYTES
    if largest_partition * row_bytes <= _OVERSIZE * target_bytes:
        return None
    return max(1, math.ceil(rows * row_bytes / target_bytes))


def _target_partition_bytes(spark: SparkSession) -> int:
    """The session's ``spark.sql.files.maxPartitionBytes`` in bytes (128 MiB when unset or unreadable)."""
    default = 128 * 2**20
    try:
        return _parse_bytes(spark.conf.get("spark.sql.files.maxPartitionBytes", "128m") or "") or default
    except Exception as exc:  # noqa: BLE001 - a conf a Connect server does not expose: the default
        log.debug("spark.sql.files.maxPartitionBytes unreadable (%s): %d bytes", exc, default)
        return default


def _sized(
    spark: SparkSession, raw: DataFrame, vector_col: str, rows: int, dim: int, largest: int, role: str
) -> int | None:
    """:func:`partitions_for` of one table as read (``vector_col`` tells float from double)."""
    vec = _field(raw, vector_col)
    element = (
        8 if vec is not None and isinstance(getattr(vec.dataType, "elementType", None), T.DoubleType) else 4
    )
    target = _target_partition_bytes(spark)
    n = partitions_for(rows, dim, element, largest, target)
    if n is not None:
        log.info(
            "%s table: its largest partition as read holds %d of %d rows (%s); cutting it into %d "
            "partitions of about %s (spark.sql.files.maxPartitionBytes)",
            role,
            largest,
            rows,
            _gib(largest * (dim * element + _ROW_OVERHEAD_BYTES)),
            n,
            _gib(target),
        )
    return n


@dataclass(frozen=True)
class RowGroup:
    """One Parquet row group of an input table: what reading it holds in memory at once.

    Attributes:
        role: the table's role (``left``, ``right``...).
        location: the table's location as given.
        rows: rows in the row group.
        nbytes: compressed bytes of the columns the job reads (id and vector): a Parquet reader holds
            them whole while it decodes the row group.
    """

    role: str
    location: str
    rows: int
    nbytes: int


def _local_parquet_files(location: str) -> list[Path]:
    """The Parquet files of a local Parquet file or folder (at most :data:`_MAX_FILES_PROBED`); none for
    anything else (a Delta table, which Spark writes in row groups of its own size, a URI, a name)."""
    scheme = _SCHEME.match(location)
    if scheme is not None and scheme.group(0).lower() != "file:":
        return []
    path = Path(urlparse(location).path) if scheme else Path(location)
    if path.is_file():
        files = [path]
    elif path.is_dir() and not (path / "_delta_log").is_dir():
        files = []
        for f in _data_files(path):
            files.append(f)
            if len(files) >= _MAX_FILES_PROBED:
                break
    else:
        return []
    return [f for f in files if _is_parquet(f)]


def row_groups(location: str, role: str, columns: list[str]) -> list[RowGroup]:
    """The row groups of a local Parquet input, read from the files' footers (no data is read).

    Args:
        location: the table's location (see :func:`read_table`); anything but a local Parquet file or
            folder gives no row groups.
        role: the table's role, for messages.
        columns: the columns the job reads (matched case-insensitively, like Spark).

    Returns:
        One :class:`RowGroup` per row group of the first :data:`_MAX_FILES_PROBED` files.
    """
    import pyarrow.parquet as pq

    wanted = {c.lower() for c in columns}
    out: list[RowGroup] = []
    for f in _local_parquet_files(location.strip()):
        try:
            meta = pq.ParquetFile(f).metadata
        except (OSError, pa.ArrowException) as exc:
            log.debug("no Parquet footer in %s (%s): Spark reports it", f, exc)
            continue
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            nbytes = sum(
                group.column(c).total_compressed_size
                for c in range(group.num_columns)
                if group.column(c).path_in_schema.split(".")[0].lower() in wanted
            )
            out.append(RowGroup(role, location, group.num_rows, nbytes))
    return out


def row_group_problem(groups: list[RowGroup], heap_bytes: int, slots: int, heap_setting: str) -> str | None:
    """Why the largest row groups cannot be read at once in the heap, with what to change; or None.

    Up to ``slots`` tasks read at once (the validation reads both tables together), each holding its
    row group whole: the ``slots`` largest row groups must fit in :data:`_ROW_GROUP_HEAP_SHARE` of the
    heap, the rest being Spark's own (shuffle buffers, cached partitions).

    Args:
        groups: the inputs' row groups (:func:`row_groups`).
        heap_bytes: heap of the JVM that runs the tasks.
        slots: tasks it runs at once.
        heap_setting: the Spark setting that sizes that heap, named in the message.

    Returns:
        A one-line message, or None when the row groups fit.
    """
    if not groups:
        return None
    largest = sorted(groups, key=lambda g: g.nbytes, reverse=True)[: max(1, slots)]
    need = sum(g.nbytes for g in largest)
    if need <= _ROW_GROUP_HEAP_SHARE * heap_bytes:
        return None
    top = largest[0]
    at_once = f"; {len(largest)} tasks read {_gib(need)} at once" if len(largest) > 1 else ""
    rows_wanted = max(
        1, int(top.rows * _ROW_GROUP_HEAP_SHARE * heap_bytes / max(1, slots) / max(1, top.nbytes))
    )
    step = 10 ** max(0, len(str(rows_wanted)) - 1)
    rows_wanted = max(1, rows_wanted // step * step)
    return (
        f"{top.role} table {top.location!r}: a Parquet row group of {top.rows:,} rows holds "
        f"{_gib(top.nbytes)}, which a reader must hold whole{at_once}, more than "
        f"{_ROW_GROUP_HEAP_SHARE:.0%} of the {_gib(heap_bytes)} heap ({heap_setting}); "
        "rewrite the table with smaller row groups "
        f"(pyarrow.parquet.write_table(table, path, row_group_size={rows_wanted:_}), or several files), "
        f"or give Spark more memory ({heap_setting}"
        + ("; VECLINK_DRIVER_MEMORY for jobs/*.py" if heap_setting == "spark.driver.memory" else "")
        + f" of at least {math.ceil(need / _ROW_GROUP_HEAP_SHARE / 2**30)}g)"
    )


def _task_heap(spark: SparkSession) -> tuple[int, int, str] | None:
    """(heap bytes, tasks at once, the setting that sizes the heap) of the JVM that runs the tasks: the
    driver in local mode, an executor otherwise; None when the session does not say."""
    try:
        master = spark.conf.get("spark.master", "") or ""
        if master.startswith("local"):
            setting = "spark.driver.memory"
            found = re.match(r"local\[(\d+|\*)", master)
            if found is None:  # local: one task at a time
                slots = 1
            elif found.group(1) == "*":
                slots = os.cpu_count() or 1
            else:
                slots = int(found.group(1))
        else:
            setting = "spark.executor.memory"
            slots = int(spark.conf.get("spark.executor.cores", "1") or 1)
        heap = _parse_bytes(spark.conf.get(setting, "1g") or "1g")
    except Exception as exc:  # noqa: BLE001 - a session that does not expose its settings: no check
        log.debug("heap size unknown (%s): row groups not checked", exc)
        return None
    return (heap, slots, setting) if heap else None


def check_row_groups(spark: SparkSession, tables: dict[str, tuple[str | DataFrame, list[str]]]) -> None:
    """Stop before any Spark work when the inputs' largest Parquet row groups cannot be read in the
    heap (:func:`row_group_problem`); local Parquet files only (their footers are read, no data).

    Args:
        spark: the active session (its memory settings are read).
        tables: role -> (location or DataFrame, the columns the job reads).

    Raises:
        InputError: one line naming the table, the row group's size and the heap, and what to change.
    """
    groups = [
        g
        for role, (location, columns) in tables.items()
        if isinstance(location, str)
        for g in row_groups(location, role, columns)
    ]
    heap = _task_heap(spark) if groups else None
    if heap is None:
        return
    problem = row_group_problem(groups, *heap)
    if problem is not None:
        raise InputError(f"invalid input: {problem}")


# --------------------------------------------------------------------------------------------------
# Schema checks (no Spark action)


def _quoted(name: str) -> Column:
    """Column by its literal name, even when it holds dots or spaces."""
    return F.col("`" + name.replace("`", "``") + "`")


def _field(df: DataFrame, name: str) -> T.StructField | None:
    """The top-level field called ``name`` (exact match first, then case-insensitive like Spark)."""
    fields = df.schema.fields
    for f in fields:
        if f.name == name:
            return f
    matches = [f for f in fields if f.name.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def _missing(table: str, column: str, what: str, df: DataFrame) -> str:
    return (
        f"{table}.{column}: {what} column {column!r} is missing; the table has columns "
        f"{df.columns}; rename it or set the column name in the input configuration"
    )


def _check_id_field(
    df: DataFrame, table: str, column: str, what: str
) -> tuple[T.StructField | None, list[str]]:
    """Locate an id column and check its type (integer or string)."""
    field = _field(df, column)
    if field is None:
        return None, [_missing(table, column, what, df)]
    if not isinstance(field.dataType, _INTEGRAL + _STRING):
        return None, [
            f"{table}.{column}: {what} column has type {field.dataType.simpleString()}, but ids must be "
            "integer (int/bigint) or string; cast it before linking"
        ]
    return field, []


def _check_vector_field(df: DataFrame, table: str, column: str) -> tuple[T.StructField | None, list[str]]:
    """Locate a vector column and check its type (array of float or double)."""
    field = _field(df, column)
    if field is None:
        return None, [_missing(table, column, "vector", df)]
    dtype = field.dataType
    if not (isinstance(dtype, T.ArrayType) and isinstance(dtype.elementType, _FLOATING)):
        return None, [
            f"{table}.{column}: vector column has type {dtype.simpleString()}, but vectors must be "
            "array<float> or array<double>; convert it before linking"
        ]
    return field, []


def _is_integral(field: T.StructField) -> bool:
    return isinstance(field.dataType, _INTEGRAL)


def _standard_id(field: T.StructField) -> Column:
    """Id column with its standard type: integers as bigint, strings as string."""
    target = T.LongType() if _is_integral(field) else T.StringType()
    return _quoted(field.name).cast(target)


def _compatible(seed: T.StructField, table: T.StructField) -> bool:
    """Seed ids can be matched to table ids: same kind, or integer seeds against string table ids.

    Integer seeds against string ids is allowed because CSV type inference turns numeric-looking string
    ids into integers; the reverse (string seeds, integer table ids) is refused.
    """
    return _is_integral(seed) or not _is_integral(table)


def _seed_id_for(seed: T.StructField, table: T.StructField | None) -> Column:
    """Seed id cast to the standard type of the table id it must match."""
    if table is not None and not _is_integral(table):
        return _quoted(seed.name).cast(T.StringType())
    return _standard_id(seed)


# --------------------------------------------------------------------------------------------------
# Standardising (lazy)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows L2-normalised in double precision, returned as float32; a zero row stays zero.

    The norm is max|x| * ||x / max|x|||, so huge or tiny doubles neither overflow nor underflow.
    """
    x = np.asarray(x, dtype=np.float64)
    scale = np.abs(x).max(axis=1, keepdims=True) if x.shape[1] else np.zeros((len(x), 1))
    scale = np.where(scale > 0, scale, 1.0)
    y = x / scale
    norms = np.sqrt((y * y).sum(axis=1, keepdims=True))
    return (y / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _unit_vectors(df: DataFrame, id_type: str) -> DataFrame:
    """The table (id, vector) with every vector L2-normalised (:func:`_unit_rows`) as array<float>.

    Runs on executors through ``mapInArrow`` (numpy on whole Arrow batches): the same normalisation in
    SQL higher-order functions (``aggregate``/``transform`` per element) made a pass over 100,000
    768-d rows about 7x slower (47.8 s against 6.4 s, measured on this project's scale pair).
    """

    def udf(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            vec = batch.column(VECTOR)
            n = len(vec)
            flat = np.asarray(vec.flatten().to_numpy(zero_copy_only=False), dtype=np.float64)
            unit = _unit_rows(flat.reshape(n, len(flat) // n if n else 0))
            yield pa.RecordBatch.from_arrays([batch.column(ID), vectors_to_arrow(unit)], names=[ID, VECTOR])

    return df.mapInArrow(udf, f"{ID} {id_type}, {VECTOR} array<float>")


#: Per-batch counts of :func:`_vector_batches`, added up over a table by :func:`_aggregate_stats`.
_BATCH_COUNTS = ("nonnull_vectors", "null_elements", "nonfinite", "zero")


def _vector_batches(df: DataFrame, vector: Column, unit_sums: bool) -> DataFrame:
    """One row per Arrow batch of ``vector``: its partition and place (``part``, ``batch``), the
    counts of :data:`_BATCH_COUNTS` (non-null vectors; rows with a null element, a NaN or infinite
    element, or only zeros (or empty)), the vectors' smallest and largest size (``min_dim``,
    ``max_dim``), and ``unit_sum``: the sum of the batch's vectors normalised as the job standardises
    them (:func:`_unit_rows`, then float64 unit rows as :func:`stages.signatures.batch_vectors` reads
    them), null unless every vector of the batch is non-null, of one size and without null elements,
    or unless ``unit_sums`` (tables centred on other means, as a model's new rows, skip that work).

    Computed with numpy on whole Arrow batches on executors (see :func:`_unit_vectors` for why not SQL).
    The unit sums make validation also the centring's pass: the table's mean is their sum in the
    order of ``part`` then ``batch``, the order in which a pass over the standardised table would add
    them (the same batches: standardising maps each batch to one), so the mean is the same to the bit
    without a second read of the table.
    """

    def udf(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for index, batch in enumerate(batches):
            if batch.num_rows == 0:
                continue
            vec = batch.column(1)
            n = len(vec)
            values = vec.flatten()
            parents = pc.list_parent_indices(vec).to_numpy(zero_copy_only=False)
            null = values.is_null().to_numpy(zero_copy_only=False)
            x = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)

            def rows(mask: np.ndarray, parents: np.ndarray = parents, n: int = n) -> np.ndarray:
                return np.bincount(parents[mask], minlength=n) > 0

            null_elements = rows(null)
            valid = vec.is_valid().to_numpy(zero_copy_only=False)
            zero = valid & ~null_elements & ~rows(~null & (x != 0))
            lengths = pc.list_value_length(vec)
            low, high = pc.min(lengths).as_py(), pc.max(lengths).as_py()
            nonfinite = rows(~null & ~np.isfinite(x))
            unit_sum = None
            if unit_sums and valid.all() and low == high and not (null_elements.any() or nonfinite.any()):
                units = normalise_rows(_unit_rows(x.reshape(n, low)).astype(np.float64))
                unit_sum = units.sum(axis=0).tolist()
            counts = [int(valid.sum()), int(null_elements.sum()), int(nonfinite.sum()), int(zero.sum())]
            yield pa.RecordBatch.from_pylist(
                [
                    {
                        "part": batch.column(0)[0].as_py(),
                        "batch": index,
                        **dict(zip(_BATCH_COUNTS, counts, strict=True)),
                        "min_dim": low,
                        "max_dim": high,
                        "unit_sum": unit_sum,
                    }
                ],
                schema=_BATCH_SCHEMA,
            )

    ddl = ", ".join(
        ["part int", "batch int", *(f"{c} long" for c in _BATCH_COUNTS), "min_dim int", "max_dim int"]
    )
    return df.select(F.spark_partition_id().alias("part"), vector.alias("v")).mapInArrow(
        udf, f"{ddl}, unit_sum array<double>"
    )


_BATCH_SCHEMA = pa.schema(
    [
        ("part", pa.int32()),
        ("batch", pa.int32()),
        *((c, pa.int64()) for c in _BATCH_COUNTS),
        ("min_dim", pa.int32()),
        ("max_dim", pa.int32()),
        ("unit_sum", pa.list_(pa.float64())),
    ]
)


def load_embeddings(
    spark_df: DataFrame, id_col: str, vector_col: str, role: str, partitions: int | None = None
) -> DataFrame:
    """Standardise one embedding table to columns ``id`` and ``vector`` (unit-norm array<float>).

    Checks the schema here (no Spark action); the value checks (nulls, NaN, dimensions, duplicates...)
    are :func:`validate`'s, which runs them as one aggregate, so call it first (as :func:`load_inputs`
    does). The result is lazy.

    Args:
        spark_df: the table as read by :func:`read_table`.
        id_col: name of its id column (integer or string).
        vector_col: name of its vector column (array<float> or array<double>).
        role: ``"left"`` or ``"right"``, for messages.
        partitions: when given, the rows are first spread over this many partitions by a hash of
            their id (:func:`partitions_for` says when and how many): a table read as a few huge
            partitions (one Parquet row group of gigabytes) is otherwise cached and searched whole by
            one task.

    Returns:
        DataFrame with exactly ``id`` (bigint for integer ids, string for string ids) and ``vector``
        (array<float>, L2-normalised in double precision; a zero vector stays zero).

    Raises:
        InputError: a column is missing or has the wrong type (every such problem listed).
    """
    id_field, problems = _check_id_field(spark_df, role, id_col, "id")
    vec_field, vec_problems = _check_vector_field(spark_df, role, vector_col)
    problems += vec_problems
    if problems or id_field is None or vec_field is None:
        raise _input_error(problems)
    standard = spark_df.select(_standard_id(id_field).alias(ID), _quoted(vec_field.name).alias(VECTOR))
    if partitions is not None:
        # Before the normalisation, so that it runs in parallel on the cut partitions.
        standard = standard.repartition(partitions, F.col(ID))
    return _unit_vectors(standard, standard.schema[ID].dataType.simpleString())


def load_seeds(
    df: DataFrame,
    left_col: str = LEFT_ID,
    right_col: str = RIGHT_ID,
    left_id_type: T.DataType | None = None,
    right_id_type: T.DataType | None = None,
) -> DataFrame:
    """Standardise the seeds table to columns ``left_id`` and ``right_id``.

    Checks the schema only (no Spark action); :func:`validate` checks the values.

    Args:
        df: the seeds table as read by :func:`read_table`.
        left_col: its column of left ids.
        right_col: its column of right ids.
        left_id_type: type of the left table's id column, if known; seed ids are then cast to match
            (integer seeds against string ids become strings).
        right_id_type: same for the right table.

    Returns:
        DataFrame with exactly ``left_id`` and ``right_id`` (bigint or string).

    Raises:
        InputError: a column is missing, has the wrong type, or cannot match the table id type.
    """
    problems: list[str] = []
    out: list[Column] = []
    for col, alias, table, target in (
        (left_col, LEFT_ID, "left", left_id_type),
        (right_col, RIGHT_ID, "right", right_id_type),
    ):
        field, found = _check_id_field(df, "seeds", col, f"{table} id")
        problems += found
        if field is None:
            continue
        table_field = T.StructField(ID, target) if target is not None else None
        if table_field is not None:
            if not isinstance(target, _INTEGRAL + _STRING):
                problems.append(
                    f"load_seeds: {table}_id_type must be an integer or string type, got {target}"
                )
                continue
            if not _compatible(field, table_field):
                problems.append(_incompatible(col, field, table, table_field))
                continue
        out.append(_seed_id_for(field, table_field).alias(alias))
    if problems:
        raise _input_error(problems)
    return df.select(*out)


def _incompatible(col: str, seed: T.StructField, table: str, table_field: T.StructField) -> str:
    return (
        f"seeds.{col}: seed ids have type {seed.dataType.simpleString()} but {table}.{table_field.name} "
        f"has type {table_field.dataType.simpleString()}; store the seeds with the {table} table's id type"
    )


# --------------------------------------------------------------------------------------------------
# Validation (few, small Spark actions)


@dataclass(frozen=True)
class _EmbeddingTable:
    """One embedding table with its id and vector fields (None when missing or mistyped)."""

    df: DataFrame
    name: str
    id_field: T.StructField | None
    vec_field: T.StructField | None


@dataclass(frozen=True)
class _SeedSide:
    """One side of the seeds (``left`` or ``right``) that can be matched against its table."""

    side: str
    seed_field: T.StructField
    table_field: T.StructField
    wanted: DataFrame  # non-null seed ids, typed like the table ids, column "sid"
    table_ids: DataFrame  # the table's ids, column "sid"


def _one_row_as_pairs(df: DataFrame, prefix: str) -> DataFrame:
    """A one-row aggregate of integer columns as rows ``(key, value)``, so several can be unioned
    and fetched by one action (their stages then also run concurrently)."""
    pairs: list[Column] = []
    for name in df.columns:
        pairs += [F.lit(f"{prefix}:{name}"), F.col(name).cast(T.LongType())]
    return df.select(F.explode(F.create_map(*pairs)))


def _embedding_tables(
    tables: dict[str, tuple[DataFrame, str, str]],
) -> tuple[dict[str, _EmbeddingTable], list[str]]:
    """Each table (name -> (table, id column, vector column)) with its checked id and vector fields, and
    the schema problems found (no Spark action)."""
    problems: list[str] = []
    out: dict[str, _EmbeddingTable] = {}
    for name, (df, id_col, vec_col) in tables.items():
        id_field, id_problems = _check_id_field(df, name, id_col, "id")
        vec_field, vec_problems = _check_vector_field(df, name, vec_col)
        problems += id_problems + vec_problems
        out[name] = _EmbeddingTable(df, name, id_field, vec_field)
    return out, problems


@dataclass
class _Stats:
    """What the validation action measured: the one-row aggregates as ``table:name`` -> value, and each
    embedding table's sum of standardised unit vectors (None when a batch had none: see
    :func:`_vector_batches`)."""

    values: dict[str, int | None]
    unit_sums: dict[str, np.ndarray | None]

    def __getitem__(self, key: str) -> int | None:
        return self.values[key]

    def get(self, key: str) -> int | None:
        return self.values.get(key)

    def mean(self, table: str) -> np.ndarray | None:
        """The table's mean unit vector (:func:`kernels.centre.table_mean`), None when not measured."""
        total = self.unit_sums.get(table)
        return None if total is None else table_mean(total, int(self.values[f"{table}:rows"] or 0))


def _aggregate_stats(tables: dict[str, _EmbeddingTable], extra: list[DataFrame], unit_sums: bool) -> _Stats:
    """Every table's aggregates (and the ``extra`` (key, value) parts) fetched by one action: the
    one-row aggregates as (key, value) rows, and the per-batch rows of :func:`_vector_batches` (one per
    Arrow batch: a few hundred rows at a million), added up here; the unit vectors' sums only with
    ``unit_sums``."""
    parts: list[DataFrame] = []
    for t in tables.values():
        parts += [_one_row_as_pairs(agg, t.name) for agg in _embedding_aggregates(t)]
        if t.vec_field is not None:
            batches = _vector_batches(t.df, _quoted(t.vec_field.name), unit_sums)
            parts.append(batches.select(F.lit(f"{t.name}:batch").alias("key"), "*"))
    union = parts[0]
    for part in parts[1:] + extra:
        union = union.unionByName(part, allowMissingColumns=True)
    values: dict[str, int | None] = {}
    by_table: dict[str, list[Any]] = {}
    for row in union.collect():
        if row["key"].endswith(":batch"):
            by_table.setdefault(row["key"][: -len(":batch")], []).append(row)
        else:
            values[row["key"]] = row["value"]
    sums: dict[str, np.ndarray | None] = {}
    for name, rows in by_table.items():
        for col in _BATCH_COUNTS:
            values[f"{name}:{col}"] = sum(int(r[col]) for r in rows)
        dims = [r[c] for r in rows for c in ("min_dim", "max_dim") if r[c] is not None]
        values[f"{name}:min_dim"] = min(dims, default=None)
        values[f"{name}:max_dim"] = max(dims, default=None)
        sums[name] = _added(sorted(rows, key=lambda r: (r["part"], r["batch"])))
    return _Stats(values, sums)


def _added(rows: list[Any]) -> np.ndarray | None:
    """The batches' unit sums added one after the other in the given order (None if any is missing or
    their sizes differ: the table is invalid then)."""
    if not rows or any(r["unit_sum"] is None for r in rows):
        return None
    if len({len(r["unit_sum"]) for r in rows}) > 1:
        return None
    total = np.zeros(len(rows[0]["unit_sum"]))
    for r in rows:
        total += np.asarray(r["unit_sum"], dtype=np.float64)
    return total


def _embedding_aggregates(table: _EmbeddingTable) -> list[DataFrame]:
    """The one-row aggregates over an embedding table: counts and distinct ids (SQL) and the rows of its
    largest partition as read (no column is read for it). The vectors' checks are
    :func:`_vector_batches`'."""
    df = table.df
    aggs: list[Column] = [F.count(F.lit(1)).alias("rows")]
    if table.id_field is not None:
        idc = _quoted(table.id_field.name)
        aggs += [F.count(idc).alias("nonnull_ids"), F.count_distinct(idc).alias("distinct_ids")]
    out = [df.agg(*aggs)]
    per_partition = df.groupBy(F.spark_partition_id().alias("partition")).count()
    out.append(per_partition.agg(F.max("count").alias("largest_partition")))
    return out


def _embedding_findings(table: _EmbeddingTable, stats: _Stats) -> tuple[list[str], int | None]:
    """Problems of one embedding table from its aggregate, and its dimension when it has exactly one."""

    def get(name: str) -> int:
        return int(stats[f"{table.name}:{name}"] or 0)

    rows = get("rows")
    if rows == 0:
        return [
            f"{table.name}: the table is empty (0 rows); check the location and any filter that built it"
        ], None
    problems: list[str] = []
    if table.id_field is not None:
        col = f"{table.name}.{table.id_field.name}"
        null_ids = rows - get("nonnull_ids")
        if null_ids:
            problems.append(f"{col}: null ids in {null_ids} of {_count(rows, 'row')}; every row needs an id")
        surplus = get("nonnull_ids") - get("distinct_ids")
        if surplus:
            problems.append(
                f"{col}: duplicate ids: {_count(surplus, 'row')} repeating an id of another row, e.g. "
                f"{_duplicate_examples(table.df, table.id_field.name)}; ids must be unique"
            )
    dim: int | None = None
    if table.vec_field is not None:
        col = f"{table.name}.{table.vec_field.name}"
        null_vectors = rows - get("nonnull_vectors")
        if null_vectors:
            problems.append(f"{col}: null vectors in {null_vectors} of {_count(rows, 'row')}")
        if get("null_elements"):
            problems.append(
                f"{col}: null elements inside the vector in {_count(get('null_elements'), 'row')}"
            )
        if get("nonfinite"):
            problems.append(f"{col}: NaN or infinite values in {_count(get('nonfinite'), 'row')}")
        if get("zero"):
            problems.append(
                f"{col}: all-zero (or empty) vectors in {_count(get('zero'), 'row')}; "
                "such a vector has no direction: drop or fix those rows"
            )
        min_dim, max_dim = stats[f"{table.name}:min_dim"], stats[f"{table.name}:max_dim"]
        if min_dim is not None and min_dim != max_dim:
            problems.append(
                f"{col}: vectors of differing dimensions within the table; dims seen (rows): "
                f"{_dimension_counts(table.df, table.vec_field.name)}; all vectors of a table must have "
                "one dimension"
            )
        elif min_dim is not None:
            dim = int(min_dim)
    return problems, dim


def _duplicate_examples(df: DataFrame, id_name: str, noun: str = "rows") -> str:
    """Up to MAX_EXAMPLES repeated ids with their row counts, most repeated first (error path only)."""
    idc = _quoted(id_name)
    dups = (
        df.where(idc.isNotNull())
        .groupBy(idc.alias("id"))
        .count()
        .where(F.col("count") > 1)
        .orderBy(F.col("count").desc(), F.col("id"))
        .limit(MAX_EXAMPLES)
        .collect()
    )
    return ", ".join(f"{r['id']!r} ({r['count']} {noun})" for r in dups)


def _dimension_counts(df: DataFrame, vector_name: str) -> str:
    """Vector sizes seen, with row counts, most frequent first (error path only; at most 10 listed)."""
    vec = _quoted(vector_name)
    rows = (
        df.where(vec.isNotNull())
        .groupBy(F.size(vec).alias("dim"))
        .count()
        .orderBy(F.col("count").desc(), F.col("dim"))
        .limit(10)
        .collect()
    )
    return ", ".join(f"{r['dim']} ({r['count']})" for r in rows)


def _seed_aggregates(
    seeds: DataFrame,
    seed_fields: dict[str, T.StructField],
    tables: dict[str, _EmbeddingTable],
) -> tuple[list[DataFrame], list[_SeedSide], list[str]]:
    """The seeds' one-row aggregates (as key/value rows) and the sides that can be matched to a table.

    One aggregate over the seeds (rows, non-null and distinct ids per side, complete pairs); per side,
    one count of distinct seed ids found in the table, by semi-joining the table's ids with the
    broadcast seed ids (the table is scanned once and never shuffled).
    """
    problems: list[str] = []
    aggs: list[Column] = [F.count(F.lit(1)).alias("rows")]
    complete = F.lit(True)
    for side, field in seed_fields.items():
        seed_col = _quoted(field.name)
        complete = complete & seed_col.isNotNull()
        aggs += [
            F.count(seed_col).alias(f"nonnull_{side}"),
            F.count_distinct(seed_col).alias(f"distinct_{side}"),
        ]
    aggs.append(F.count_if(complete).alias("complete"))
    parts = [_one_row_as_pairs(seeds.agg(*aggs), "seeds")]
    sides: list[_SeedSide] = []
    for side, field in seed_fields.items():
        table_field = tables[side].id_field
        if table_field is None:
            continue  # the table's id column is missing or mistyped: already reported
        if not _compatible(field, table_field):
            problems.append(_incompatible(field.name, field, side, table_field))
            continue
        wanted = seeds.select(_seed_id_for(field, table_field).alias("sid")).where(F.col("sid").isNotNull())
        table_ids = tables[side].df.select(_standard_id(table_field).alias("sid"))
        # Rows of the table whose id is a seed id; equals the distinct seed ids found when table ids are
        # unique (a plain count saves the extra shuffle of a distinct count; see _seed_findings).
        present = table_ids.join(F.broadcast(wanted), "sid", "left_semi")
        parts.append(_one_row_as_pairs(present.agg(F.count(F.lit(1)).alias(f"present_{side}")), "seeds"))
        sides.append(_SeedSide(side, field, table_field, wanted, table_ids))
    return parts, sides, problems


def _seed_findings(
    seeds: DataFrame,
    seed_fields: dict[str, T.StructField],
    sides: list[_SeedSide],
    stats: _Stats,
) -> tuple[list[str], int]:
    """Problems of the seeds from their aggregates, plus one tiny query per problem needing examples."""

    def get(name: str) -> int:
        return int(stats[f"seeds:{name}"] or 0)

    rows = get("rows")
    if rows == 0:
        return ["seeds: the table is empty (0 rows); at least 2 seed pairs are needed"], 0
    problems: list[str] = []
    for side, field in seed_fields.items():
        col = f"seeds.{field.name}"
        n_null = rows - get(f"nonnull_{side}")
        if n_null:
            problems.append(f"{col}: null {side} ids in {n_null} of {_count(rows, 'seed')}")
        surplus = get(f"nonnull_{side}") - get(f"distinct_{side}")
        if surplus:
            problems.append(
                f"{col}: {side} ids used by more than one seed ({_count(surplus, 'surplus seed')}), "
                f"e.g. {_duplicate_examples(seeds, field.name, 'seeds')}; seeds must be one-to-one "
                "(each id in one seed only; remove repeated pairs)"
            )
    for match in sides:
        table_ids_unique = stats[f"{match.side}:nonnull_ids"] == stats[f"{match.side}:distinct_ids"]
        if table_ids_unique and get(f"present_{match.side}") == get(f"distinct_{match.side}"):
            continue  # every distinct seed id was found exactly once
        # Exact count and examples; seeds are small, so collecting the absent ones' first few is cheap.
        absent = (
            match.wanted.distinct()
            .join(match.table_ids, "sid", "left_anti")
            .agg(
                F.count(F.lit(1)).alias("n"),
                F.slice(F.array_sort(F.collect_list("sid")), 1, MAX_EXAMPLES).alias("examples"),
            )
            .collect()[0]
        )
        if absent["n"]:
            problems.append(
                f"seeds.{match.seed_field.name}: {_count(absent['n'], 'seed ' + match.side + ' id')} "
                f"absent from {match.side}.{match.table_field.name}, e.g. "
                f"{', '.join(repr(v) for v in absent['examples'])}; seeds must name ids present in the "
                f"{match.side} table"
            )
    if len(seed_fields) == 2 and get("complete") < 2:
        problems.append(
            f"seeds: only {get('complete')} seed pair(s) with both ids set; "
            "at least 2 are needed (15-30 is typical)"
        )
    return problems, rows


def validate(
    left: DataFrame,
    right: DataFrame,
    seeds: DataFrame,
    columns: InputColumns | None = None,
) -> InputSummary:
    """Check the three inputs and report every problem found at once.

    Works on the tables as read (user column names, given by ``columns``) or on the standardised ones
    from :func:`load_embeddings` / :func:`load_seeds` (the default ``columns`` match those).

    Spark work, valid inputs: a single action fetching per embedding table an aggregate of its ids
    (rows, non-null and distinct ids) and one row per Arrow batch of its vectors
    (:func:`_vector_batches`: non-null vectors, min/max vector size, rows with null or NaN/infinite
    elements, all-zero rows, and the sum of the unit vectors, from which the summary's mean: the
    validation is also the centring's pass), one aggregate over the seeds, and per side the count of
    seed ids found by a semi-join of the table with the broadcast seed ids. Each problem that needs
    examples (duplicate ids, dimensions seen, absent seed ids) adds one tiny query. No table is
    collected.

    Args:
        left: left embedding table.
        right: right embedding table.
        seeds: seed pairs table.
        columns: column names in these tables; default ``InputColumns()``.

    Returns:
        InputSummary with row counts, dimensions, the number of seeds and the tables' mean unit vectors.

    Raises:
        InputError: one message listing every problem, each prefixed ``table.column:``: missing
            column (with the columns present), wrong type, empty table, differing dimensions (with the
            dims seen), null ids or vectors, NaN/infinite values, all-zero vectors, duplicate ids (with
            examples), seed ids absent from a table (with examples), an id used by two seeds, fewer than
            two seeds, seed id types that cannot match the table's.
    """
    cols = columns or InputColumns()
    tables, problems = _embedding_tables(
        {"left": (left, cols.left_id, cols.left_vector), "right": (right, cols.right_id, cols.right_vector)}
    )
    seed_fields: dict[str, T.StructField] = {}
    for side, col in (("left", cols.seeds_left), ("right", cols.seeds_right)):
        field, side_problems = _check_id_field(seeds, "seeds", col, f"{side} id")
        problems += side_problems
        if field is not None:
            seed_fields[side] = field

    seed_parts, sides, seed_type_problems = _seed_aggregates(seeds, seed_fields, tables)
    stats = _aggregate_stats(tables, seed_parts, unit_sums=True)

    left_problems, dim_left = _embedding_findings(tables["left"], stats)
    right_problems, dim_right = _embedding_findings(tables["right"], stats)
    seed_problems, n_seeds = _seed_findings(seeds, seed_fields, sides, stats)
    if stats.get("seeds:rows"):
        # A header-only CSV has string columns (nothing to infer a type from): an empty table is the
        # problem to report then, not the types.
        problems += seed_type_problems
    problems += left_problems + right_problems + seed_problems
    if problems or dim_left is None or dim_right is None:
        raise _input_error(problems or ["no vector dimension could be measured"])
    summary = InputSummary(
        n_left=int(stats["left:rows"] or 0),
        n_right=int(stats["right:rows"] or 0),
        dim_left=dim_left,
        dim_right=dim_right,
        n_seeds=n_seeds,
        largest_partition_left=int(stats["left:largest_partition"] or 0),
        largest_partition_right=int(stats["right:largest_partition"] or 0),
        mean_left=stats.mean("left"),
        mean_right=stats.mean("right"),
    )
    log.info(
        "inputs valid: left %d x %d, right %d x %d, %d seeds",
        summary.n_left,
        summary.dim_left,
        summary.n_right,
        summary.dim_right,
        summary.n_seeds,
    )
    return summary


def load_inputs(
    spark: SparkSession,
    left: str,
    right: str,
    seeds: str,
    columns: InputColumns | None = None,
) -> LinkerInputs:
    """Read, validate and standardise the three inputs.

    Args:
        spark: the active session.
        left: location of the left embedding table (see :func:`read_table`).
        right: location of the right embedding table.
        seeds: location of the seeds table.
        columns: column names in the user's tables; default ``InputColumns()``.

    Returns:
        LinkerInputs: standardised ``left``/``right`` (id, unit-norm vector), ``seeds`` (left_id,
        right_id, typed like the table ids) and the summary.

    Raises:
        InputError: a table cannot be read, or :func:`validate` found problems.
    """
    cols = columns or InputColumns()
    left_raw = read_table(spark, left, "left")
    right_raw = read_table(spark, right, "right")
    seeds_raw = read_table(spark, seeds, "seeds")
    check_row_groups(
        spark,
        {
            "left": (left, [cols.left_id, cols.left_vector]),
            "right": (right, [cols.right_id, cols.right_vector]),
        },
    )
    summary = validate(left_raw, right_raw, seeds_raw, cols)
    s = summary
    left_df = load_embeddings(
        left_raw,
        cols.left_id,
        cols.left_vector,
        "left",
        _sized(spark, left_raw, cols.left_vector, s.n_left, s.dim_left, s.largest_partition_left, "left"),
    )
    right_df = load_embeddings(
        right_raw,
        cols.right_id,
        cols.right_vector,
        "right",
        _sized(
            spark, right_raw, cols.right_vector, s.n_right, s.dim_right, s.largest_partition_right, "right"
        ),
    )
    seeds_df = load_seeds(
        seeds_raw,
        cols.seeds_left,
        cols.seeds_right,
        left_id_type=left_df.schema[ID].dataType,
        right_id_type=right_df.schema[ID].dataType,
    )
    return LinkerInputs(left=left_df, right=right_df, seeds=seeds_df, summary=summary)


def load_tables(
    spark: SparkSession, tables: dict[str, tuple[str | DataFrame, str, str]]
) -> dict[str, tuple[DataFrame, int, int]]:
    """Read, validate (one action for all) and standardise embedding tables without seeds: the inputs
    of a fitted model's new-rows linking, merging and translation.

    Args:
        spark: the active session.
        tables: role -> (location or DataFrame, id column, vector column); the role names the table in
            messages.

    Returns:
        role -> (standardised table (id, unit-norm vector), rows, dimension).

    Raises:
        InputError: a table cannot be read or has problems (every problem of every table listed).
    """
    found, problems = _embedding_tables(
        {
            role: (read_table(spark, location, role) if isinstance(location, str) else location, i, v)
            for role, (location, i, v) in tables.items()
        }
    )
    check_row_groups(spark, {role: (location, [i, v]) for role, (location, i, v) in tables.items()})
    stats = _aggregate_stats(found, [], unit_sums=False)
    dims: dict[str, int | None] = {}
    for role, table in found.items():
        table_problems, dims[role] = _embedding_findings(table, stats)
        problems += table_problems
    if problems:
        raise _input_error(problems)
    out: dict[str, tuple[DataFrame, int, int]] = {}
    for role, (_, id_col, vec_col) in tables.items():
        dim = dims[role]
        assert dim is not None  # a table without problems has one dimension
        rows = int(stats[f"{role}:rows"] or 0)
        largest = int(stats[f"{role}:largest_partition"] or 0)
        partitions = _sized(spark, found[role].df, vec_col, rows, dim, largest, role)
        out[role] = (load_embeddings(found[role].df, id_col, vec_col, role, partitions), rows, dim)
    return out


def _count(n: int, noun: str) -> str:
    """``"1 row"``, ``"3 rows"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _input_error(problems: list[str]) -> InputError:
    """One InputError listing every problem on its own line."""
    if len(problems) == 1:
        return InputError(f"invalid input: {problems[0]}")
    return InputError(f"invalid inputs ({len(problems)} problems):\n- " + "\n- ".join(problems))
