"""Shared pytest fixtures: one lazily created, session-scoped SparkSession tuned for tiny data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running test (real data, cluster); run with -m slow")
    config.addinivalue_line("markers", "cluster: starts a Spark standalone cluster")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


#: (case, seconds from the job's start to its error line) of the bad-input tests, reported at the end.
_ERROR_TIMES: list[tuple[str, float]] = []


@pytest.fixture()
def error_times() -> list[tuple[str, float]]:
    """Where a bad-input test records how long the job took to report the problem."""
    return _ERROR_TIMES


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """The bad-input tests' time to the error line (with a warm Spark session): reported, not asserted."""
    if not _ERROR_TIMES:
        return
    terminalreporter.write_sep("-", "jobs/link.py: seconds from start to the error line (warm session)")
    for case, seconds in _ERROR_TIMES:
        terminalreporter.write_line(f"{case}: {seconds:.2f} s")


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One local SparkSession for the whole test run, Delta configured as the jobs configure it."""
    from veclink_spark.session import get_or_create_session

    session = get_or_create_session(
        master="local[2]",
        app_name="veclink-spark-tests",
        conf={
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "4",
            "spark.ui.enabled": "false",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            # Delta rebuilds table snapshots with 50 shuffle partitions by default: far too many for
            # tables of a few rows on 2 cores (Delta's own test suites lower it the same way).
            "spark.databricks.delta.snapshotPartitions": "2",
        },
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real-data folder next to the checkout; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    return SHARED_DATA
