"""The run store: the one seam that reads and writes a run's Delta tables.

Every table of a run lives at ``<output>/<table>`` (``output`` is a local path or any Hadoop URI:
``file:///...``, ``dbfs:/...``, ``abfss://...``, ``s3a://...``) and is partitioned by ``run_id``, so
several runs can share one output location without clashing. Two kinds of tables:

* **per-round tables** (anchors, votes, round links) carry ``run_id`` and ``round`` columns and are
  written one ``(run_id, round)`` slice at a time with :meth:`RunStore.write_round`;
* **per-run tables** (final links, summary) carry ``run_id`` and are replaced as a whole with
  :meth:`RunStore.replace_run`.

Every write is an overwrite of exactly its slice (Delta ``replaceWhere``), so retrying a write after a
failure, or re-running a round after a resume, never duplicates rows.

Round protocol. A round writes its tables, then :meth:`RunStore.commit_round` writes its marker into the
``rounds`` table. A crash between the two leaves rows of an uncommitted round behind;
:meth:`RunStore.discard_uncommitted` deletes them, and :meth:`RunStore.last_committed_round` says where
to resume::

    store = RunStore(spark, "/data/out")
    store.discard_uncommitted(run_id, ["anchors", "votes"])
    start = (store.last_committed_round(run_id) or 0) + 1
    ...
    store.write_round("anchors", anchors_df, run_id, start)
    store.commit_round(run_id, start, {"promoted": 42})

Runs on the driver; uses only the DataFrame API and Spark SQL (so it also works on Spark Connect, where
Delta's Python ``DeltaTable`` needs Delta's Connect server plugin; only a classic session's existence
check uses ``DeltaTable``). Reads are lazy: a failure while reading data files surfaces at the caller's
action, not here.
"""

from __future__ import annotations

import json
import logging
import numbers
import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from delta.tables import DeltaTable
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .constants import ROUND, RUN_ID
from .errors import StoreError
from .session import is_connect

try:  # py4j is absent from Spark-Connect-only installs (pyspark-client).
    from py4j.protocol import Py4JError

    _IO_ERRORS: tuple[type[BaseException], ...] = (PySparkException, Py4JError, OSError)
except ImportError:  # pragma: no cover - depends on the installation
    _IO_ERRORS = (PySparkException, OSError)

log = logging.getLogger(__name__)

#: Table holding one commit marker row per finished round.
TABLE_ROUNDS = "rounds"
INFO_JSON = "info_json"
COMMITTED_AT = "committed_at"

_RUN_ID_RE = re.compile(r"[A-Za-z0-9_.-]+")
_TABLE_RE = re.compile(r"[A-Za-z0-9_]+")
_FILE_PART_RE = re.compile(r"[A-Za-z0-9_.-]+")
_MAX_ERROR_CHARS = 600


def _brief(exc: BaseException) -> str:
    """The first lines of an exception message (Spark's can run to a stack trace)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " | ".join(lines[:3]) or type(exc).__name__
    return text[:_MAX_ERROR_CHARS]


#: Retries of a write that met a concurrent writer of the same table.
_CONCURRENT_RETRIES = 4
#: Delta's names for a transaction that lost to a concurrent one (error classes and exception classes).
_CONCURRENT_MARKERS = (
    "DELTA_PROTOCOL_CHANGED",
    "DELTA_METADATA_CHANGED",
    "DELTA_CONCURRENT",
    "ProtocolChangedException",
    "MetadataChangedException",
    "ConcurrentAppendException",
    "ConcurrentWriteException",
    "ConcurrentTransactionException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
)


#: Spark's and Delta's error conditions for "no Delta table at this path" when reading one.
_NO_DELTA_TABLE = (
    "PATH_NOT_FOUND",
    "DELTA_PATH_DOES_NOT_EXIST",
    "DELTA_TABLE_NOT_FOUND",
    "DELTA_MISSING_DELTA_TABLE",
)


def is_delta_table(spark: SparkSession, path: str) -> bool:
    """Whether ``path`` holds a Delta table.

    On a classic session: ``DeltaTable.isDeltaTable`` (a look for the table's log, no Spark job). On
    Spark Connect that call needs Delta's Connect server plugin, which a plain Connect server lacks, so
    the table's schema is asked for instead (Spark analyses a read, no query runs): a missing path or
    one without a Delta log is False, any other failure (unknown URI scheme, no access) is raised.

    Raises:
        PySparkException (or an I/O error): when the location cannot be checked.
    """
    if not is_connect(spark):
        return bool(DeltaTable.isDeltaTable(spark, path))
    try:
        spark.read.format("delta").load(path).schema  # noqa: B018 - the analysis is the check
    except PySparkException as exc:
        condition = exc.getCondition() or ""
        if condition in _NO_DELTA_TABLE or any(f"[{c}]" in str(exc) for c in _NO_DELTA_TABLE):
            return False
        raise
    return True


def sql_path(path: str) -> str:
    """``path`` as the SQL identifier of a path-based Delta table: ``delta.`<path>```."""
    return "delta.`" + path.replace("`", "``") + "`"


def is_concurrent_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is Delta's report of a transaction that lost to a concurrent writer."""
    text = f"{type(exc).__name__} {exc}"
    return any(marker in text for marker in _CONCURRENT_MARKERS)


def check_run_id(run_id: str) -> str:
    """Validate a run id for use in table predicates.

    Args:
        run_id: the run id; letters, digits, ``_``, ``.`` and ``-`` only.

    Returns:
        The run id unchanged.

    Raises:
        StoreError: when the run id is not a string of those characters.
    """
    if not isinstance(run_id, str) or not _RUN_ID_RE.fullmatch(run_id):
        raise StoreError(
            f"invalid run id {run_id!r}: use letters, digits, '_', '.' and '-' only "
            "(for example 'wordnet-2024.06.01_a')"
        )
    return run_id


def run_id_or_new(run_id: str | None, prefix: str) -> str:
    """``run_id`` checked (:func:`check_run_id`), or a new id ``<prefix>-<date>-<time>-<6 hex>`` when it
    is empty (a link run, a new-rows run, a several-models run)."""
    if run_id:
        return check_run_id(run_id)
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def _check_round(round_no: int) -> int:
    """Validate a round number (a non-negative integer) and return it as a Python int."""
    if isinstance(round_no, bool) or not isinstance(round_no, numbers.Integral) or int(round_no) < 0:
        raise StoreError(f"invalid round number {round_no!r}: must be an integer >= 0")
    return int(round_no)


def local_path(location: str) -> Path | None:
    """The local filesystem path of ``location``, or None when it is a non-local URI."""
    parsed = urlparse(location)
    if parsed.scheme == "" or len(parsed.scheme) == 1:  # plain path (one letter: a Windows drive)
        return Path(location)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return None


class RunStore:
    """Reads and writes the Delta tables of runs under one output location.

    Args:
        spark: the SparkSession (Delta configured, see :func:`veclink_spark.session.get_or_create_session`).
        output: the output location: a local path or any Hadoop URI; tables are folders under it.

    Raises:
        StoreError: when ``output`` is empty.
    """

    def __init__(self, spark: SparkSession, output: str) -> None:
        if not isinstance(output, str) or not output.strip():
            raise StoreError(f"invalid output location {output!r}: give a path or URI such as /data/out")
        self.spark = spark
        self.output = output.rstrip("/") or "/"

    def __repr__(self) -> str:
        return f"RunStore(output={self.output!r})"

    # ------------------------------------------------------------------------------------------ paths

    def path(self, table: str) -> str:
        """The location of ``table`` under the output location.

        Args:
            table: table name; letters, digits and ``_`` only.

        Returns:
            ``<output>/<table>``.

        Raises:
            StoreError: when the table name has other characters.
        """
        if not isinstance(table, str) or not _TABLE_RE.fullmatch(table):
            raise StoreError(f"invalid table name {table!r}: use letters, digits and '_' only")
        return self._join(table)

    def _join(self, name: str) -> str:
        """``<output>/<name>`` without a doubled slash."""
        return f"{self.output.rstrip('/')}/{name}"

    def exists(self, table: str) -> bool:
        """Whether a Delta table exists at :meth:`path` of ``table``.

        Args:
            table: table name.

        Returns:
            True when the location holds a Delta table (:func:`is_delta_table`).

        Raises:
            StoreError: when the location cannot be checked (bad URI scheme, no access).
        """
        path = self.path(table)
        try:
            return is_delta_table(self.spark, path)
        except _IO_ERRORS as exc:
            raise StoreError(f"cannot check for a Delta table at {path}: {_brief(exc)}") from exc

    # -------------------------------------------------------------------------------- low-level IO

    def _overwrite(self, table: str, df: DataFrame, predicate: str, what: str) -> None:
        """Overwrite the rows matching ``predicate`` with ``df``; create the table if absent.

        A write that loses a race with another run's (two runs creating the same new table, Delta's
        ``DELTA_PROTOCOL_CHANGED`` and friends) is retried: the write replaces exactly its own slice, so
        repeating it is safe.
        """
        path = self.path(table)
        for attempt in range(_CONCURRENT_RETRIES + 1):
            try:
                (
                    df.write.format("delta")
                    .mode("overwrite")
                    .option("replaceWhere", predicate)
                    # an output folder written by an earlier version gains the new columns (its rows: null)
                    .option("mergeSchema", "true")
                    .partitionBy(RUN_ID)
                    .save(path)
                )
                break
            except _IO_ERRORS as exc:
                if attempt < _CONCURRENT_RETRIES and is_concurrent_conflict(exc):
                    log.warning(
                        "writing %s to %s met a concurrent writer (%s); retrying (%d of %d)",
                        what,
                        path,
                        _brief(exc)[:120],
                        attempt + 1,
                        _CONCURRENT_RETRIES,
                    )
                    time.sleep(0.5 * (attempt + 1))
                    continue
                raise StoreError(
                    f"writing {what} to Delta table {table!r} at {path} failed: {_brief(exc)}; "
                    "check that the data's columns and types match the existing table and that the "
                    "location is writable"
                ) from exc
        log.debug("wrote %s to %s", what, path)

    def _load(self, table: str) -> DataFrame:
        """The whole Delta table ``table``; StoreError when it is absent or unreadable."""
        path = self.path(table)
        if not self.exists(table):
            raise StoreError(
                f"Delta table {table!r} not found at {path}: check the output location, or run the round "
                "that writes it first"
            )
        try:
            return self.spark.read.format("delta").load(path)
        except _IO_ERRORS as exc:
            raise StoreError(f"reading Delta table {table!r} at {path} failed: {_brief(exc)}") from exc

    # ---------------------------------------------------------------------------- per-round tables

    def write_round(self, table: str, df: DataFrame, run_id: str, round_no: int) -> None:
        """Write ``df`` as the ``(run_id, round_no)`` slice of a per-round table.

        Adds (or replaces) the columns ``run_id`` (string) and ``round`` (int), then overwrites exactly
        that slice (Delta ``replaceWhere``), creating the table partitioned by ``run_id`` if it is absent.
        Calling it again with the same arguments replaces the slice, so retries never duplicate rows.

        Args:
            table: table name.
            df: the round's rows.
            run_id: the run id.
            round_no: the round number (>= 0).

        Raises:
            StoreError: on an invalid run id, round or table name, or when the write fails.
        """
        run_id = check_run_id(run_id)
        round_no = _check_round(round_no)
        tagged = df.withColumn(RUN_ID, F.lit(run_id).cast("string")).withColumn(
            ROUND, F.lit(round_no).cast("int")
        )
        predicate = f"{RUN_ID} = '{run_id}' AND {ROUND} = {round_no}"
        self._overwrite(table, tagged, predicate, f"run {run_id} round {round_no}")

    def read_round(self, table: str, run_id: str, round_no: int) -> DataFrame:
        """The rows of one round of one run (with the ``run_id`` and ``round`` columns).

        Raises:
            StoreError: on an invalid run id or round, or when the table is absent or unreadable.
        """
        run_id = check_run_id(run_id)
        round_no = _check_round(round_no)
        df = self._load(table)
        return df.where((F.col(RUN_ID) == F.lit(run_id)) & (F.col(ROUND) == F.lit(round_no)))

    def read_rounds(self, table: str, run_id: str, upto: int | None = None) -> DataFrame:
        """The rows of all rounds of one run, or of rounds ``<= upto`` when given.

        Args:
            table: table name.
            run_id: the run id.
            upto: last round to include; None for all.

        Returns:
            A DataFrame with the ``run_id`` and ``round`` columns.

        Raises:
            StoreError: on an invalid run id or round, or when the table is absent or unreadable.
        """
        run_id = check_run_id(run_id)
        df = self._load(table).where(F.col(RUN_ID) == F.lit(run_id))
        if upto is not None:
            df = df.where(F.col(ROUND) <= F.lit(_check_round(upto)))
        return df

    # ------------------------------------------------------------------------------ per-run tables

    def replace_run(self, table: str, df: DataFrame, run_id: str) -> None:
        """Replace all rows of ``run_id`` in a per-run table with ``df`` (adds the ``run_id`` column).

        Creates the table (partitioned by ``run_id``) when absent; other runs' rows are untouched.
        Idempotent like :meth:`write_round`.

        Raises:
            StoreError: on an invalid run id or table name, or when the write fails.
        """
        run_id = check_run_id(run_id)
        tagged = df.withColumn(RUN_ID, F.lit(run_id).cast("string"))
        self._overwrite(table, tagged, f"{RUN_ID} = '{run_id}'", f"run {run_id}")

    def read_run(self, table: str, run_id: str) -> DataFrame:
        """All rows of ``run_id`` in a table (with the ``run_id`` column).

        Raises:
            StoreError: on an invalid run id, or when the table is absent or unreadable.
        """
        run_id = check_run_id(run_id)
        return self._load(table).where(F.col(RUN_ID) == F.lit(run_id))

    # ---------------------------------------------------------------------------- round commits

    def commit_round(self, run_id: str, round_no: int, info: dict[str, Any]) -> None:
        """Mark a round as finished by writing its row into the ``rounds`` table.

        The row holds ``run_id``, ``round``, ``info_json`` (``info`` as JSON) and ``committed_at``
        (timestamp). Committing the same round again replaces its row.

        Args:
            run_id: the run id.
            round_no: the round number.
            info: what to remember of the round (counts, threshold...): JSON-serialisable values.

        Raises:
            StoreError: on an invalid run id or round, when ``info`` is not a JSON-serialisable dict,
                or when the write fails.
        """
        run_id = check_run_id(run_id)
        round_no = _check_round(round_no)
        if not isinstance(info, dict):
            raise StoreError(f"round info of run {run_id} round {round_no} must be a dict, got {type(info)}")
        try:
            info_json = json.dumps(info, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise StoreError(
                f"round info of run {run_id} round {round_no} is not JSON-serialisable ({exc}): use plain "
                "str, int, float, bool, None, list and dict values (convert numpy scalars with .item())"
            ) from exc
        row = self.spark.createDataFrame(
            [(run_id, round_no, info_json)],
            schema=f"{RUN_ID} string, {ROUND} int, {INFO_JSON} string",
        ).withColumn(COMMITTED_AT, F.current_timestamp())
        predicate = f"{RUN_ID} = '{run_id}' AND {ROUND} = {round_no}"
        self._overwrite(TABLE_ROUNDS, row, predicate, f"the commit of run {run_id} round {round_no}")
        log.info("committed run %s round %d", run_id, round_no)

    def committed_rounds(self, run_id: str) -> list[dict[str, Any]]:
        """The ``info`` dicts of the committed rounds of a run, ordered by round (empty if none).

        Raises:
            StoreError: on an invalid run id, or when the ``rounds`` table is unreadable.
        """
        run_id = check_run_id(run_id)
        if not self.exists(TABLE_ROUNDS):
            return []
        df = self._load(TABLE_ROUNDS).where(F.col(RUN_ID) == F.lit(run_id)).orderBy(ROUND)
        try:
            rows = df.select(INFO_JSON).collect()  # one small row per round
        except _IO_ERRORS as exc:
            raise StoreError(
                f"reading the round commits of run {run_id} at {self.path(TABLE_ROUNDS)} failed: "
                f"{_brief(exc)}"
            ) from exc
        return [json.loads(row[INFO_JSON]) for row in rows]

    def last_committed_round(self, run_id: str) -> int | None:
        """The highest committed round of a run, or None when it has none.

        Raises:
            StoreError: on an invalid run id, or when the ``rounds`` table is unreadable.
        """
        run_id = check_run_id(run_id)
        if not self.exists(TABLE_ROUNDS):
            return None
        df = self._load(TABLE_ROUNDS).where(F.col(RUN_ID) == F.lit(run_id))
        try:
            last = df.agg(F.max(ROUND).alias("last")).first()
        except _IO_ERRORS as exc:
            raise StoreError(
                f"reading the round commits of run {run_id} at {self.path(TABLE_ROUNDS)} failed: "
                f"{_brief(exc)}"
            ) from exc
        return None if last is None or last["last"] is None else int(last["last"])

    def discard_uncommitted(self, run_id: str, tables: list[str]) -> None:
        """Delete the rows of rounds after the last committed one of a run (a crashed round's leftovers).

        With no committed round, every row of the run is deleted from those tables. Tables that do not
        exist yet are skipped; other runs' rows are untouched.

        Args:
            run_id: the run id.
            tables: per-round tables (having a ``round`` column) to clean.

        Raises:
            StoreError: on an invalid run id, when a table has no ``round`` column, or when a delete fails.
        """
        run_id = check_run_id(run_id)
        last = self.last_committed_round(run_id)
        predicate = f"{RUN_ID} = '{run_id}'"
        if last is not None:
            predicate += f" AND {ROUND} > {last}"
        for table in tables:
            path = self.path(table)
            if not self.exists(table):
                log.debug("discard_uncommitted: no table at %s, nothing to discard", path)
                continue
            try:
                columns = self.spark.read.format("delta").load(path).columns
                if ROUND not in columns:
                    raise StoreError(
                        f"table {table!r} at {path} has no {ROUND!r} column (columns: {columns}): "
                        "only per-round tables written with write_round can be cleaned"
                    )
                if is_connect(self.spark):
                    # Delta's Python DeltaTable needs its Connect plugin: SQL, the same Delta DELETE
                    # (delta.`<path>` is a table only for an absolute path: give one on Connect).
                    self.spark.sql(f"DELETE FROM {sql_path(path)} WHERE {predicate}")
                else:
                    # Resolves a relative path as every read and write here does (SQL would not).
                    DeltaTable.forPath(self.spark, path).delete(predicate)
            except _IO_ERRORS as exc:
                raise StoreError(
                    f"deleting uncommitted rounds of run {run_id} from {table!r} at {path} failed: "
                    f"{_brief(exc)}"
                ) from exc
            log.info("discarded rows of run %s after round %s from %s", run_id, last, path)

    # ----------------------------------------------------------------------------------- JSON files

    def read_json(self, name: str) -> Any | None:
        """The JSON document ``<output>/<name>`` written by :meth:`write_json`, or None when it does not
        exist (or a remote location cannot be read)."""
        location = self._join(name)
        local = local_path(location)
        if local is not None:
            return json.loads(local.read_text(encoding="utf-8")) if local.is_file() else None
        try:  # a remote document is a folder with one text part (write_json)
            rows = self.spark.read.text(location, wholetext=True).collect()
        except Exception:  # noqa: BLE001 - an unreadable location is "no document here"
            return None
        return json.loads(rows[0][0]) if rows else None

    def write_json(self, name: str, obj: Any) -> str:
        """Write ``obj`` as a JSON document under the output location.

        For a local path or a ``file:`` URI the document is one plain file ``<output>/<name>``. For other
        URIs (``dbfs:``, ``abfss:``, ``s3a:``...) Python cannot write there directly, so Spark writes it
        as text output: ``<output>/<name>`` is then a folder holding one ``part-*.txt`` file with the
        document (read it back with ``spark.read.text(location, wholetext=True)``).

        Args:
            name: file name, e.g. ``summary.json``; ``/``-separated parts of letters, digits, ``_.-``.
            obj: a JSON-serialisable object.

        Returns:
            The location written, ``<output>/<name>``.

        Raises:
            StoreError: on an invalid name, an object that is not JSON-serialisable, or a failed write.
        """
        parts = name.split("/") if isinstance(name, str) else [""]
        if not all(_FILE_PART_RE.fullmatch(p) and p not in (".", "..") for p in parts):
            raise StoreError(f"invalid JSON file name {name!r}: use parts of letters, digits, '_', '.', '-'")
        try:
            text = json.dumps(obj, indent=2, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"cannot write {name!r}: object is not JSON-serialisable ({exc})") from exc
        location = self._join(name)
        local = local_path(location)
        try:
            if local is not None:
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_text(text + "\n", encoding="utf-8")
            else:
                (
                    self.spark.createDataFrame([(text,)], schema="value string")
                    .coalesce(1)
                    .write.mode("overwrite")
                    .text(location)
                )
        except _IO_ERRORS as exc:
            raise StoreError(f"writing JSON file {location} failed: {_brief(exc)}") from exc
        log.debug("wrote %s", location)
        return location
