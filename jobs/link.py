#!/usr/bin/env python
"""spark-submit entry point: link two embedding tables and write the links to Delta.

    spark-submit jobs/link.py --left PATH --right PATH --seeds PATH --output PATH \
        [--config conf/FILE.yaml] [--run-id ID] [--min-precision X] [--answers PATH] [--ask] \
        [--report [--truth PATH]]
    python jobs/link.py ...            # same, with the embedded local Spark session (Delta configured)

Each link gets ``precision_estimate`` (the estimated precision of all links at least as confident);
``--min-precision X`` keeps the links whose estimate is at least X. A run that is not sure of its links
writes ``questions`` (``--ask``: always); their answers come back with ``--answers``.

Every run also writes its fitted model under ``<output>/model`` (jobs/link_new.py and jobs/merge.py
use it). ``--report`` writes the run's figures as PNG under ``<output>/report``; with ``--truth`` (true
pairs) they include precision and recall per committed round.

Exit code 0 on success (a run that did not take off is a result, and says so in its log and summary),
2 on invalid configuration or input (nothing written), 1 on any other failure; the reason is one line on
stderr. With ``--fail-on-stall`` a run whose verdict is "stalled" exits 3 after writing its tables
(its links are not a matching: a pipeline step after this one should not consume them).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

# Runnable from a checkout without installing the package (python jobs/link.py, spark-submit).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from veclink_spark import LinkConfig, Linker  # noqa: E402
from veclink_spark.cli import run_job  # noqa: E402
from veclink_spark.errors import InputError  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Link two embedding tables made by different encoders (veclink-spark)."
    )
    p.add_argument(
        "--left", required=True, help="left embedding table: Delta path, Parquet path or catalog table"
    )
    p.add_argument(
        "--right", required=True, help="right embedding table: Delta path, Parquet path or catalog table"
    )
    p.add_argument("--seeds", required=True, help="seed pairs (left_id, right_id): Delta, Parquet or CSV")
    p.add_argument("--output", required=True, help="output folder/URI for the run's Delta tables")
    p.add_argument(
        "--config", default=None, help="YAML config (default: built-in defaults = conf/default.yaml)"
    )
    p.add_argument("--run-id", default=None, help="run id; re-using one resumes that run")
    p.add_argument(
        "--min-precision",
        type=float,
        default=None,
        help="keep the links whose precision_estimate is at least this (links.min_precision; seeds kept)",
    )
    p.add_argument(
        "--answers",
        default=None,
        help="answers to an earlier run's questions (left_id, right_id, match): Delta, Parquet or CSV",
    )
    p.add_argument("--ask", action="store_true", help="always write the questions table (links.ask: always)")
    p.add_argument("--master", default=None, help="Spark master URL (default: spark-submit's, else local[*])")
    p.add_argument("--log-level", default=os.environ.get("VECLINK_LOG_LEVEL", "INFO"))
    p.add_argument(
        "--report",
        action="store_true",
        help="also write the run's figures (scores.png, rounds.png) under <output>/report (local output)",
    )
    p.add_argument(
        "--truth",
        default=None,
        help="with --report: a table of true pairs (left_id, right_id), for precision and recall per round",
    )
    p.add_argument(
        "--fail-on-stall",
        action="store_true",
        help="exit 3 when the run's verdict is 'stalled' (tables and summary are still written)",
    )
    return p.parse_args(argv)


def write_figures(spark: Any, output: str, result: Any, truth: str | None) -> None:
    """The run's figures as PNG under <output>/report (veclink_spark.plots)."""
    from veclink_spark.linker import precision_recall_by_round
    from veclink_spark.plots import write_report
    from veclink_spark.store import local_path

    folder = local_path(f"{output.rstrip('/')}/report")
    if folder is None:
        raise InputError(f"--report writes PNG files and needs a local --output, not {output!r}")
    by_round = precision_recall_by_round(spark, output, result.run_id, truth) if truth else None
    files = write_report(folder, result.links.toPandas(), result.summary, by_round)
    logging.getLogger("veclink.job").info("figures: %s", ", ".join(str(f) for f in files))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def work(spark: Any) -> str | int:
        cfg = LinkConfig.from_yaml(args.config) if args.config else LinkConfig()
        if args.min_precision is not None or args.ask:
            conf = cfg.to_dict()
            if args.min_precision is not None:
                conf["links"]["min_precision"] = args.min_precision
            if args.ask:
                conf["links"]["ask"] = "always"
            cfg = LinkConfig.from_dict(conf)
        result = Linker(cfg, spark).link(
            args.left, args.right, args.seeds, args.output, args.run_id, answers=args.answers
        )
        s = result.summary
        if args.report:
            write_figures(spark, args.output, result, args.truth)
        if args.fail_on_stall and s["verdict"] == "stalled":
            reasons = "; ".join(s.get("reasons") or []) or "no reason recorded"
            sys.stderr.write(f"veclink-spark: run {result.run_id} stalled (--fail-on-stall): {reasons}\n")
            return 3
        est = s.get("estimated_precision")
        return (
            f"done: run {result.run_id}, {s['n_links']} links beyond {s['n_seeds']} seeds, estimated "
            f"precision {'n/a' if est is None else f'{est:.3f}'}, verdict {s['verdict']}"
            f"{', questions written' if s.get('questions_written') else ''}, "
            f"summary {os.path.join(args.output, 'summary.json')}, model "
            f"{os.path.join(args.output, 'model')}"
        )

    return run_job(args, "veclink-spark link", work)


if __name__ == "__main__":
    exit_code = main()
    from veclink_spark.session import stop_active_session

    stop_active_session()
    sys.exit(exit_code)
