"""Embed a table of texts into a Delta table of vectors (id, vector array<float>) on Spark.

    python jobs/embed.py --input TEXTS --output DELTA_PATH --encoder NAME \
        [--id-column id] [--text-column text] [--batch-size 64] [--master URL] \
        [--chunk-size 2000] [--partitions P] [--threads T] [--overwrite | --resume]

TEXTS is a Parquet file or folder, a Delta table or a CSV file with a header (``--input-format``
overrides the guess). NAME is one of ``e5-small-q4``, ``minilm-l3-onnx``, ``minilm-l6-int8``,
``glove-6b-50d-mean`` (a word-vector average: a negative control, not a sentence encoder) or
``sentence-transformers:<model>`` (see ``veclink_spark/encoders.py``; install them with
``bash scripts/install_encoders.sh``).

How it runs. The texts are split by a hash of the id into chunks of about ``--chunk-size`` rows. Each
chunk is one Spark job: ``--partitions`` tasks (default: the cluster's parallelism) run
``mapInArrow`` with the model loaded once per Python worker, and the chunk's vectors are appended to the
Delta table. Progress: after every chunk the driver logs one INFO line (chunk i/K, texts done/total,
rate, ETA), so a 60 k-text job shows about 30 lines, one every few seconds to a few minutes depending on
the encoder. A stopped job leaves the chunks written so far; ``--resume`` embeds only the ids not yet in
the output. Exit 0 on success; on failure a one-line reason on stderr and exit 1 (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import logging
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if importlib.util.find_spec("veclink_spark") is None:  # run from a checkout without `pip install -e .`
    _REPO = str(Path(__file__).resolve().parents[1])
    sys.path.insert(0, _REPO)
    # Local-mode Python workers inherit the environment; on a cluster the package must be installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_REPO, os.environ.get("PYTHONPATH")) if p)

from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql.types import ArrayType, FloatType, StructField, StructType  # noqa: E402

from veclink_spark.constants import ID, VECTOR  # noqa: E402
from veclink_spark.encoders import TEXT, check_encoder, embed_arrow_batches  # noqa: E402
from veclink_spark.errors import InputError, VeclinkError  # noqa: E402
from veclink_spark.store import is_delta_table  # noqa: E402

log = logging.getLogger("veclink_spark.jobs.embed")

CHUNK = "_chunk"
MODES = ("error", "overwrite", "resume")


@dataclass(frozen=True)
class EmbedResult:
    """What :func:`run_embed` did."""

    rows_total: int
    rows_embedded: int
    chunks: int
    seconds: float

    @property
    def texts_per_second(self) -> float:
        """Embedding throughput of this run (rows embedded / wall time)."""
        return self.rows_embedded / self.seconds if self.seconds > 0 else 0.0


def _is_delta(spark: SparkSession, path: str) -> bool:
    return is_delta_table(spark, path)  # also on Spark Connect


def read_texts(
    spark: SparkSession,
    path: str,
    id_column: str = ID,
    text_column: str = TEXT,
    input_format: str = "auto",
) -> DataFrame:
    """Read the input table and return it as columns (``id``, ``text``).

    Args:
        spark: the session.
        path: Parquet file/folder, Delta table or CSV file (with a header line).
        id_column, text_column: the input's column names.
        input_format: ``auto`` (Delta if the path is a Delta table, CSV if it ends in .csv, else
            Parquet), ``delta``, ``parquet`` or ``csv``.

    Raises:
        InputError: unreadable path, missing column, or a text column that is not a string.
    """
    fmt = input_format
    if fmt == "auto":
        if _is_delta(spark, path):
            fmt = "delta"
        elif re.search(r"\.csv(\.gz|\.bz2)?$", path, re.IGNORECASE):
            fmt = "csv"
        else:
            fmt = "parquet"
    try:
        if fmt == "csv":
            df = (
                spark.read.option("header", "true")
                .option("inferSchema", "true")
                .option("multiLine", "true")
                .option("escape", '"')
                .csv(path)
            )
        elif fmt in ("delta", "parquet"):
            df = spark.read.format(fmt).load(path)
        else:
            raise InputError(f"--input-format must be auto, delta, parquet or csv, got {input_format!r}")
    except InputError:
        raise
    except Exception as exc:  # AnalysisException and friends: re-raised with the path and format
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {fmt} input {path}: {first}") from exc
    missing = [c for c in (id_column, text_column) if c not in df.columns]
    if missing:
        raise InputError(
            f"input {path} has no column(s) {missing}; its columns are {df.columns}: "
            "pass --id-column / --text-column"
        )
    if df.schema[text_column].dataType.simpleString() != "string":
        raise InputError(
            f"text column {text_column!r} of {path} is {df.schema[text_column].dataType.simpleString()}, "
            "not string"
        )
    return df.select(F.col(id_column).alias(ID), F.col(text_column).alias(TEXT))


def embed_dataframe(
    texts: DataFrame,
    encoder: str,
    batch_size: int = 64,
    num_threads: int | None = 1,
) -> DataFrame:
    """Lazily embed a DataFrame of (``id``, ``text``) into (``id``, ``vector`` array<float>).

    No action runs here. The embedding itself runs on the executors (``mapInArrow`` calling
    :func:`veclink_spark.encoders.embed_arrow_batches`), one task per partition of ``texts``.

    Args:
        texts: columns ``id`` (any type) and ``text`` (string, no nulls).
        encoder: encoder name (see :mod:`veclink_spark.encoders`).
        batch_size: texts per model call.
        num_threads: CPU threads of the model in each Python worker.
    """
    schema = StructType(
        [
            StructField(ID, texts.schema[ID].dataType, True),
            StructField(VECTOR, ArrayType(FloatType(), True), True),
        ]
    )
    fn = functools.partial(
        embed_arrow_batches, encoder=encoder, batch_size=batch_size, num_threads=num_threads
    )
    return texts.select(ID, TEXT).mapInArrow(fn, schema)


def _default_partitions(spark: SparkSession) -> int:
    configured = spark.conf.get("spark.default.parallelism", None)
    if configured:
        return max(1, int(configured))
    master = spark.conf.get("spark.master", None) or ""
    match = re.fullmatch(r"local\[(\d+|\*)(,\d+)?\]", master)
    if match:
        return (os.cpu_count() or 1) if match.group(1) == "*" else int(match.group(1))
    instances = spark.conf.get("spark.executor.instances", None)
    cores = spark.conf.get("spark.executor.cores", None)
    if instances and cores:
        return int(instances) * int(cores)
    log.info(
        "cluster parallelism unknown (master %s): using 2 partitions per chunk; pass --partitions", master
    )
    return 2


def _check_texts(texts: DataFrame, source: str) -> int:
    row = texts.agg(
        F.count(F.lit(1)).alias("n"),
        F.count_if(F.col(ID).isNull()).alias("null_ids"),
        F.count_if(F.col(TEXT).isNull()).alias("null_texts"),
        F.count_distinct(F.col(ID)).alias("ids"),
    ).first()
    assert row is not None  # an aggregation without grouping always returns one row
    problems = []
    if row["null_ids"]:
        problems.append(f"{row['null_ids']} rows have a null id")
    if row["null_texts"]:
        problems.append(f"{row['null_texts']} rows have a null text (filter or fill them first)")
    non_null = row["n"] - row["null_ids"]
    if row["ids"] != non_null:
        problems.append(f"{non_null - row['ids']} ids are duplicated (ids must be unique)")
    if problems:
        raise InputError(f"input {source}: " + "; ".join(problems))
    return int(row["n"])


def run_embed(
    spark: SparkSession,
    input_path: str,
    output_path: str,
    encoder: str,
    id_column: str = ID,
    text_column: str = TEXT,
    batch_size: int = 64,
    chunk_size: int = 2000,
    partitions: int | None = None,
    num_threads: int | None = None,
    mode: str = "error",
    input_format: str = "auto",
) -> EmbedResult:
    """Embed the texts at ``input_path`` into the Delta table at ``output_path``, chunk by chunk.

    Runs on the driver; triggers one small validation aggregation, one count per chunk and one
    Delta append per chunk, and logs one progress line per chunk.

    Args:
        spark: the session (Delta configured).
        input_path, id_column, text_column, input_format: see :func:`read_texts`.
        output_path: Delta table path; written with columns (``id``, ``vector`` array<float>).
        encoder: encoder name (see :mod:`veclink_spark.encoders`).
        batch_size: texts per model call.
        chunk_size: about this many texts per chunk (one Spark job and one progress line each).
        partitions: concurrent tasks per chunk; default the cluster's parallelism.
        num_threads: model threads per task; default ``spark.task.cpus`` (1).
        mode: ``error`` (fail if the output exists), ``overwrite`` or ``resume`` (embed only ids
            missing from the output).

    Returns:
        What was done (rows, chunks, seconds).

    Raises:
        VeclinkError: unknown encoder or missing package. InputError: bad input, bad arguments, or
        the output exists in mode ``error``.
    """
    problems = []
    if mode not in MODES:
        problems.append(f"mode must be one of {MODES}, got {mode!r}")
    if batch_size < 1:
        problems.append(f"batch size must be >= 1, got {batch_size}")
    if chunk_size < 1:
        problems.append(f"chunk size must be >= 1, got {chunk_size}")
    if partitions is not None and partitions < 1:
        problems.append(f"partitions must be >= 1, got {partitions}")
    if num_threads is not None and num_threads < 1:
        problems.append(f"threads must be >= 1, got {num_threads}")
    if problems:
        raise InputError("; ".join(problems))
    check_encoder(encoder)
    start = time.monotonic()
    exists = _is_delta(spark, output_path)
    if exists and mode == "error":
        raise InputError(
            f"output {output_path} is already a Delta table: pass --overwrite to replace it or --resume "
            "to embed only the ids it lacks"
        )
    partitions = partitions or _default_partitions(spark)
    threads = num_threads or int(spark.conf.get("spark.task.cpus", "1") or 1)

    texts = read_texts(spark, input_path, id_column, text_column, input_format)
    total = _check_texts(texts, input_path)
    pending = texts.persist()
    to_embed = total
    if exists and mode == "resume":
        done_ids = spark.read.format("delta").load(output_path).select(ID)
        pending.unpersist()
        pending = texts.join(done_ids, on=ID, how="left_anti").persist()
        to_embed = pending.count()
    n_chunks = max(1, math.ceil(to_embed / chunk_size))
    todo = pending.withColumn(CHUNK, F.pmod(F.xxhash64(F.col(ID)), F.lit(n_chunks)))
    try:
        sizes = {r[CHUNK]: int(r["count"]) for r in todo.groupBy(CHUNK).count().collect()}
        remaining = sum(sizes.values())
        log.info(
            "embedding %d of %d texts from %s with %s into %s: %d chunks x %d partitions, batch %d, "
            "%d thread(s) per task",
            remaining,
            total,
            input_path,
            encoder,
            output_path,
            len(sizes),
            partitions,
            batch_size,
            threads,
        )
        first_write_mode = "overwrite" if mode == "overwrite" else "append"
        if not sizes and (mode == "overwrite" or not exists):
            # Nothing to embed: still leave a (possibly empty) table with the right schema.
            _write(
                embed_dataframe(todo.drop(CHUNK), encoder, batch_size, threads),
                output_path,
                first_write_mode,
                encoder,
                "empty",
            )
        done = 0
        loop_start = time.monotonic()
        for i, chunk in enumerate(sorted(sizes)):
            t0 = time.monotonic()
            part = todo.where(F.col(CHUNK) == chunk).drop(CHUNK).repartition(partitions)
            vectors = embed_dataframe(part, encoder, batch_size, threads)
            _write(
                vectors,
                output_path,
                first_write_mode if i == 0 else "append",
                encoder,
                f"{i + 1}/{len(sizes)}",
            )
            done += sizes[chunk]
            rate = done / max(time.monotonic() - loop_start, 1e-9)  # excludes start-up and checks
            log.info(
                "chunk %d/%d: %d texts in %.1f s; %d/%d done (%.0f %%), %.1f texts/s, ETA %s",
                i + 1,
                len(sizes),
                sizes[chunk],
                time.monotonic() - t0,
                done,
                remaining,
                100.0 * done / remaining,
                rate,
                _duration((remaining - done) / rate if rate else 0.0),
            )
    finally:
        pending.unpersist()
    seconds = time.monotonic() - start
    result = EmbedResult(
        rows_total=total, rows_embedded=sum(sizes.values()), chunks=len(sizes), seconds=seconds
    )
    log.info(
        "done: %d texts embedded with %s into %s in %s (%.1f texts/s)",
        result.rows_embedded,
        encoder,
        output_path,
        _duration(seconds),
        result.texts_per_second,
    )
    return result


def _write(df: DataFrame, path: str, mode: str, encoder: str, chunk: str) -> None:
    writer = (
        df.write.format("delta")
        .mode(mode)
        .option("userMetadata", json.dumps({"job": "embed", "encoder": encoder, "chunk": chunk}))
    )
    if mode == "overwrite":
        writer = writer.option("overwriteSchema", "true")
    writer.save(path)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # Errors raised in a Python worker arrive wrapped in a long traceback: keep its last "XError: ..".
    found = re.findall(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$", text, re.MULTILINE)
    if found and not isinstance(exc, VeclinkError):
        name, msg = found[-1]
        return f"{name}: {msg.strip()}"
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="embed", description="Embed a table of texts into a Delta table (id, vector)."
    )
    p.add_argument("--input", required=True, help="texts: Parquet, Delta or CSV (header) path")
    p.add_argument("--output", required=True, help="output Delta table path")
    p.add_argument(
        "--encoder",
        required=True,
        help="e5-small-q4, minilm-l3-onnx, minilm-l6-int8, glove-6b-50d-mean (negative control) or "
        "sentence-transformers:<model>",
    )
    p.add_argument("--id-column", default=ID)
    p.add_argument("--text-column", default=TEXT)
    p.add_argument("--input-format", default="auto", choices=("auto", "parquet", "delta", "csv"))
    p.add_argument("--batch-size", type=int, default=64, help="texts per model call (default 64)")
    p.add_argument(
        "--chunk-size",
        type=int,
        default=2000,
        help="about this many texts per chunk; one progress line per chunk (default 2000)",
    )
    p.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="concurrent tasks per chunk (default: the cluster's parallelism)",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="model threads per task (default spark.task.cpus, 1)"
    )
    p.add_argument("--master", default=None, help="Spark master URL (default: active session or local[*])")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--overwrite", action="store_true", help="replace the output table")
    group.add_argument("--resume", action="store_true", help="embed only ids missing from the output")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging, tracebacks on failure")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the process exit code."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        check_encoder(args.encoder)  # before the ~10 s Spark start-up
        from veclink_spark.session import get_or_create_session

        spark = get_or_create_session(args.master, app_name=f"veclink-embed-{args.encoder}")
        run_embed(
            spark,
            args.input,
            args.output,
            args.encoder,
            id_column=args.id_column,
            text_column=args.text_column,
            batch_size=args.batch_size,
            chunk_size=args.chunk_size,
            partitions=args.partitions,
            num_threads=args.threads,
            mode="overwrite" if args.overwrite else "resume" if args.resume else "error",
            input_format=args.input_format,
        )
    except Exception as exc:  # the job's contract: one line on stderr and a non-zero exit code
        log.debug("embed failed", exc_info=True)
        print(f"embed: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
