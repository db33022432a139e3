"""The shared frame of the spark-submit jobs (jobs/*.py): logging, the session, one-line errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from .errors import ConfigError, InputError, VeclinkError


def add_common_args(p: argparse.ArgumentParser) -> None:
    """The options every job has: the Spark master and the log level."""
    p.add_argument("--master", default=None, help="Spark master URL (default: spark-submit's, else local[*])")
    p.add_argument("--log-level", default="INFO")


def run_job(args: argparse.Namespace, app_name: str, work: Callable[[Any], str | int]) -> int:
    """The shared frame of the jobs: logging, the session, and one-line errors with exit codes (2 for
    invalid configuration or input, 1 for anything else). ``work(spark)`` returns the closing log line,
    or an exit code of its own."""
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from veclink_spark.session import get_or_create_session

    try:
        spark = get_or_create_session(master=args.master, app_name=app_name)
        done = work(spark)
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
    if isinstance(done, int):
        return done
    logging.getLogger("veclink.job").info("%s", done)
    return 0
