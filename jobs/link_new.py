#!/usr/bin/env python
"""spark-submit entry point: link rows that arrived after a run, with the run's fitted model.

    spark-submit jobs/link_new.py --model OUT/model --new PATH --output PATH \
        [--side left|right] [--against PATH] [--existing PATH] [--run-id ID] [--min-precision X]
    python jobs/link_new.py ...        # same, with the embedded local Spark session (Delta configured)

``--model`` is a fitted model: every run of jobs/link.py writes one under ``<output>/model``. ``--new``
holds the new rows of ``--side`` (columns id and vector, ids not in the fitted table). A new row is
linked when it is a mutual best match among all rows: the rows the model was fitted on (``--existing``)
compete with it for the other side's rows (``--against``); both default to the tables of the run that
fitted the model, and rows the model already links stay linked. Each new link gets
``precision_estimate``, estimated on these tables as a run's links are; ``--min-precision X`` keeps the
new links estimated at X or more (default: the fitted run's ``links.min_precision``). Writes ``links``
(and ``votes``) under ``--output`` and ``new_rows/<run_id>.json`` (with ``estimated_precision`` of the
new links). Exit code 0 on success, 2 on invalid input (nothing written), 1 on any other failure; the
reason is one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Runnable from a checkout without installing the package (python jobs/link_new.py, spark-submit).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from veclink_spark.cli import add_common_args, run_job  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Link new rows with a fitted veclink-spark model.")
    p.add_argument("--model", required=True, help="fitted model folder (a run's <output>/model)")
    p.add_argument(
        "--new", required=True, help="table of the new rows (id, vector): Delta, Parquet or catalog"
    )
    p.add_argument("--against", default=None, help="the other side's table (default: the fitted run's)")
    p.add_argument(
        "--existing", default=None, help="the table of --side the model was fitted on (default: the run's)"
    )
    p.add_argument("--output", required=True, help="output folder/URI for the new links (Delta)")
    p.add_argument("--side", choices=("left", "right"), default="left", help="side of the new rows")
    p.add_argument("--run-id", default=None, help="id of this new-rows run (default: a new id)")
    p.add_argument(
        "--min-precision",
        type=float,
        default=None,
        help="keep the new links whose precision_estimate is at least this (default: the fitted run's "
        "links.min_precision)",
    )
    add_common_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def work(spark):  # type: ignore[no-untyped-def]
        from veclink_spark.model_spark import link_new, load_model

        model = load_model(args.model, spark)
        result = link_new(
            model,
            args.new,
            args.output,
            side=args.side,
            against=args.against,
            existing=args.existing,
            run_id=args.run_id,
            spark=spark,
            min_precision=args.min_precision,
        )
        s = result.summary
        return (
            f"done: {s['n_links']} links for {s['new_rows']} new {s['side']} rows "
            f"(estimated precision {s['estimated_precision']}; model verdict {s['verdict']}), "
            f"run {result.run_id} in {args.output}"
        )

    return run_job(args, "veclink-spark link-new", work)


if __name__ == "__main__":
    exit_code = main()
    from veclink_spark.session import stop_active_session

    stop_active_session()
    sys.exit(exit_code)
