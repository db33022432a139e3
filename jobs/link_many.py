#!/usr/bin/env python
"""spark-submit entry point: link three or more embedding tables pairwise and confirm links by triangles.

    spark-submit jobs/link_many.py --table minilm=PATH --table e5=PATH --table mpnet=PATH \
        --seeds PATH --output PATH [--config conf/FILE.yaml] [--run-id ID]
    python jobs/link_many.py ...       # same, with the embedded local Spark session (Delta configured)

Each pair of tables is one link run under ``<output>/<a>__<b>`` (with the same ``--run-id`` the
command resumes an interrupted pair and finds the finished ones); ``<output>/confirmed`` (Delta)
holds every pair's links with the tables that confirm them (a third table's row linked to both
ends), ``<output>/summary.json`` each pair's verdict, links and confirmed links. The seeds table has
one id column per table name (one row per known object; null where a table lacks it).

Exit code 0 on success, 2 on invalid configuration or input (nothing written), 1 on any other failure;
the reason is one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# Runnable from a checkout without installing the package (python jobs/link_many.py, spark-submit).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from veclink_spark.cli import add_common_args, run_job  # noqa: E402
from veclink_spark.errors import InputError  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Link several embedding tables pairwise (veclink-spark).")
    p.add_argument(
        "--table",
        action="append",
        required=True,
        metavar="NAME=TABLE",
        help="a table and its name (letters, digits, '_'); give three or more",
    )
    p.add_argument("--seeds", required=True, help="seeds table: one id column per table name")
    p.add_argument("--output", required=True, help="output folder/URI")
    p.add_argument("--config", default=None, help="YAML configuration, the same for every pair")
    p.add_argument("--run-id", default=None, help="re-use a run id to resume it (default: a new id)")
    add_common_args(p)
    return p.parse_args(argv)


def tables_of(specs: list[str]) -> dict[str, str]:
    """``NAME=TABLE`` options as an ordered mapping; InputError on a malformed or repeated one."""
    tables: dict[str, str] = {}
    for spec in specs:
        name, sep, location = spec.partition("=")
        if not sep or not name or not location:
            raise InputError(f"--table takes NAME=TABLE, got {spec!r}")
        if name in tables:
            raise InputError(f"--table {name} is given twice")
        tables[name] = location
    return tables


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def work(spark: Any) -> str:
        from veclink_spark import LinkConfig
        from veclink_spark.multi import link_many

        cfg = LinkConfig.from_yaml(args.config) if args.config else LinkConfig()
        result = link_many(tables_of(args.table), args.seeds, args.output, cfg, spark, args.run_id)
        pairs = ", ".join(
            f"{p['left']}-{p['right']} {p['verdict']} {p['n_links']} links ({p['n_confirmed']} confirmed)"
            for p in result.summary["pairs"]
        )
        return f"done: run {result.summary['run_id']}: {pairs}; confirmed links in {args.output}/confirmed"

    return run_job(args, "veclink-spark link-many", work)


if __name__ == "__main__":
    exit_code = main()
    from veclink_spark.session import stop_active_session

    stop_active_session()
    sys.exit(exit_code)
