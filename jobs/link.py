#!/usr/bin/env python
"""spark-submit entry point: link two embedding tables and write the links to Delta.

    spark-submit jobs/link.py --left PATH --right PATH --seeds PATH --output PATH \
        [--config conf/FILE.yaml] [--run-id ID]
    python jobs/link.py ...            # same, with the embedded local Spark session (Delta configured)

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

# Runnable from a checkout without installing the package (python jobs/link.py, spark-submit).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from veclink_spark import LinkConfig, Linker  # noqa: E402
from veclink_spark.errors import ConfigError, InputError, VeclinkError  # noqa: E402


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
    p.add_argument("--master", default=None, help="Spark master URL (default: spark-submit's, else local[*])")
    p.add_argument("--log-level", default=os.environ.get("VECLINK_LOG_LEVEL", "INFO"))
    p.add_argument(
        "--fail-on-stall",
        action="store_true",
        help="exit 3 when the run's verdict is 'stalled' (tables and summary are still written)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        cfg = LinkConfig.from_yaml(args.config) if args.config else LinkConfig()
        from veclink_spark.session import get_or_create_session

        spark = get_or_create_session(master=args.master, app_name="veclink-spark link")
        result = Linker(cfg, spark).link(args.left, args.right, args.seeds, args.output, args.run_id)
    except (ConfigError, InputError) as exc:
        sys.stderr.write(f"veclink-spark: {' '.join(str(exc).split())}\n")
        return 2
    except VeclinkError as exc:
        sys.stderr.write(f"veclink-spark: {' '.join(str(exc).split())}\n")
        return 1
    except Exception as exc:  # the job's last line of defence: one line, non-zero
        sys.stderr.write(
            f"veclink-spark: unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:500]}\n"
        )
        return 1
    s = result.summary
    logging.getLogger("veclink.job").info(
        "done: run %s, %d links beyond %d seeds, verdict %s, summary %s",
        result.run_id,
        s["n_links"],
        s["n_seeds"],
        s["verdict"],
        os.path.join(args.output, "summary.json"),
    )
    if args.fail_on_stall and s["verdict"] == "stalled":
        reasons = "; ".join(s.get("reasons") or []) or "no reason recorded"
        sys.stderr.write(f"veclink-spark: run {result.run_id} stalled (--fail-on-stall): {reasons}\n")
        return 3
    return 0


if __name__ == "__main__":
    exit_code = main()
    from veclink_spark.session import stop_active_session

    stop_active_session()
    sys.exit(exit_code)
