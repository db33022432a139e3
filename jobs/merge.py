#!/usr/bin/env python
"""spark-submit entry point: one vector index from two tables and a fitted model.

    spark-submit jobs/merge.py --model OUT/model --left PATH --right PATH --output PATH [--into right] \
        [--min-precision X]
    python jobs/merge.py ...           # same, with the embedded local Spark session (Delta configured)

Writes the Delta table ``<output>/merged`` in the ``--into`` model's space: every row of that side as it
is, every unlinked row of the other side translated by the model, a linked pair once (with
``--min-precision X``, only the links whose precision_estimate is at least X, and the seeds); provenance
columns source, source_id, linked_id, probability, precision_estimate. Exit code 0 on success, 2 on
invalid input (nothing written), 1 on any other failure; the reason is one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Runnable from a checkout without installing the package (python jobs/merge.py, spark-submit).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from veclink_spark.cli import add_common_args, run_job  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Merge two embedding tables into one index with a fitted model.")
    p.add_argument("--model", required=True, help="fitted model folder (a run's <output>/model)")
    p.add_argument("--left", required=True, help="left embedding table (id, vector)")
    p.add_argument("--right", required=True, help="right embedding table (id, vector)")
    p.add_argument("--output", required=True, help="output folder/URI; the index is <output>/merged")
    p.add_argument("--into", choices=("left", "right"), default="right", help="space of the merged index")
    p.add_argument(
        "--min-precision",
        type=float,
        default=0.0,
        help="merge only the links whose precision_estimate is at least this (and the seeds); the rows of "
        "the others stay apart",
    )
    add_common_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def work(spark):  # type: ignore[no-untyped-def]
        from pyspark.sql import functions as F

        from veclink_spark.model_spark import load_model, merge

        model = load_model(args.model, spark)
        merged = merge(
            model,
            args.left,
            args.right,
            args.output,
            into=args.into,
            spark=spark,
            min_precision=args.min_precision,
        )
        counts = {
            r["source"]: r["n"] for r in merged.groupBy("source").agg(F.count("*").alias("n")).collect()
        }
        linked = merged.where(F.col("linked_id").isNotNull()).count()
        total = sum(counts.values())
        return f"done: merged index of {total} rows {counts}, {linked} linked pairs, in {args.output}/merged"

    return run_job(args, "veclink-spark merge", work)


if __name__ == "__main__":
    exit_code = main()
    from veclink_spark.session import stop_active_session

    stop_active_session()
    sys.exit(exit_code)
