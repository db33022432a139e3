"""SparkSession with Delta Lake configured: the embedded default of veclink-spark.

Runs on the driver only. These situations are handled:

* An active session exists (a Databricks notebook or job, Spark Connect): it is returned unchanged;
  there Delta is configured by the platform.
* No session, no master given and ``SPARK_REMOTE`` set (``sc://host:port``): a Spark Connect session
  to that server, whose own settings must configure Delta (pyspark's own convention for that variable).
* Under ``spark-submit`` (the driver JVM already exists and holds the submitted settings): the session
  is built with ``SparkSession.builder.getOrCreate()`` without touching master, jars or the Delta
  settings, which ``spark-submit --master --jars --conf`` gave; only ``conf`` is applied.
* No session and no master given: a local ``local[*]`` session is built with Delta configured.
* A master URL given (``spark://host:7077``): a session on that cluster, with the Delta jars shipped.

Delta jars. delta-spark's Python package holds no jars. Its helper ``configure_spark_with_delta_pip``
makes Spark resolve them through Ivy from one Maven Central host, which does not resolve on every
network. We instead fetch the two jars Delta needs on Spark (``delta-spark`` and ``delta-storage``)
once with Maven (``mvn dependency:copy``, which uses the user's own Maven settings and mirrors) into a
cache folder (``$VECLINK_JARS_DIR``, default ``~/.cache/veclink-spark/jars``) and pass them as
``spark.jars``. ``scripts/fetch_jars.sh`` does the same from the shell.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
from pathlib import Path

from pyspark.sql import SparkSession

from .errors import VeclinkError

log = logging.getLogger(__name__)

#: Delta Lake release whose Spark jars are served by Maven Central for Spark 4.2 / Scala 2.13.
#: The Python package ``delta-spark`` is pinned to the same version in setup.cfg.
DELTA_VERSION = "4.4.0"
SCALA_VERSION = "2.13"


def delta_artifacts(spark_version: str) -> list[str]:
    """Maven coordinates of the jars Delta needs on a Spark of ``spark_version`` (e.g. ``4.2.0``)."""
    major_minor = ".".join(spark_version.split(".")[:2])
    return [
        f"io.delta:delta-spark_{major_minor}_{SCALA_VERSION}:{DELTA_VERSION}",
        f"io.delta:delta-storage:{DELTA_VERSION}",
    ]


def jars_dir() -> Path:
    """The folder where the Delta jars are cached between runs."""
    return Path(os.environ.get("VECLINK_JARS_DIR", Path.home() / ".cache" / "veclink-spark" / "jars"))


def delta_jars(spark_version: str | None = None) -> list[str]:
    """Paths of the cached Delta jars, fetching them with Maven first if they are missing.

    Raises:
        VeclinkError: when the jars are not cached and Maven cannot fetch them.
    """
    import pyspark

    version = spark_version or pyspark.__version__
    folder = jars_dir()
    folder.mkdir(parents=True, exist_ok=True)
    wanted = delta_artifacts(version)
    missing = []
    for coord in wanted:
        _, artifact, ver = coord.split(":")
        if not (folder / f"{artifact}-{ver}.jar").exists():
            missing.append(coord)
    if missing:
        mvn = shutil.which("mvn")
        if mvn is None:
            raise VeclinkError(
                f"Delta jars {missing} are not cached in {folder} and Maven (mvn) is not installed: "
                "install Maven, or put the jars there by hand, or set VECLINK_JARS_DIR"
            )
        for coord in missing:
            log.info("fetching %s into %s with Maven", coord, folder)
            proc = subprocess.run(
                [mvn, "-q", "-B", "dependency:copy", f"-Dartifact={coord}", f"-DoutputDirectory={folder}"],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
                raise VeclinkError(f"Maven could not fetch {coord}: {' | '.join(tail)}")
    paths = []
    for coord in wanted:
        _, artifact, ver = coord.split(":")
        paths.extend(glob.glob(str(folder / f"{artifact}-{ver}.jar")))
    return sorted(paths)


def is_connect(spark: SparkSession) -> bool:
    """Whether ``spark`` is a Spark Connect session (``SparkSession.builder.remote(...)``, Databricks
    serverless) rather than a classic one with a JVM in this process. Looks at the session's class only,
    so it imports nothing (the Connect client's modules need grpc)."""
    return type(spark).__module__.startswith("pyspark.sql.connect.")


def running_under_spark_submit() -> bool:
    """Whether this Python process is the driver of an application launched by ``spark-submit``.

    ``spark-submit`` starts the driver JVM first and then this Python process, telling it where the JVM
    listens through ``PYSPARK_GATEWAY_PORT``; ``SPARK_SUBMIT=1`` (or ``true``) forces the answer for
    launchers that do it differently. Only environment variables are read (no JVM access), so the check
    is cheap and safe before any session exists.

    Returns:
        True when a ``spark-submit`` launch is detected.
    """
    forced = os.environ.get("SPARK_SUBMIT", "").strip().lower()
    if forced in ("1", "true", "yes"):
        return True
    return bool(os.environ.get("PYSPARK_GATEWAY_PORT"))


def stop_active_session() -> None:
    """Stop the active session, if any: the last step of a command-line job (a job that ends with its
    session still running leaves the JVM gateway and Arrow's threads to interpreter shutdown, which
    was seen to abort the Python process once after the job's work was done)."""
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


def get_or_create_session(
    master: str | None = None,
    app_name: str = "veclink-spark",
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """Return the active SparkSession, or build one with Delta configured.

    Args:
        master: Spark master URL; ``None`` means the active session if any, else a Spark Connect
            session when ``SPARK_REMOTE`` is set, else ``local[*]``.
            Ignored (with a warning) under ``spark-submit``, whose ``--master`` wins.
        app_name: application name of a newly built session (not under ``spark-submit``).
        conf: extra Spark settings for a newly built session.

    Returns:
        A SparkSession on which ``format("delta")`` works (under ``spark-submit``: when the submit
        command configured Delta, which is checked and warned about).

    Raises:
        VeclinkError: when a local or cluster session is built and the Delta jars cannot be fetched.
    """
    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    remote = os.environ.get("SPARK_REMOTE", "").strip()
    if remote and master is None:
        builder = SparkSession.builder.remote(remote)
        for key, value in (conf or {}).items():
            builder = builder.config(key, value)
        return builder.getOrCreate()
    if running_under_spark_submit():
        if master is not None:
            log.warning(
                "running under spark-submit: ignoring master=%r, spark-submit's --master is used", master
            )
        builder = SparkSession.builder
        for key, value in (conf or {}).items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        extensions = session.conf.get("spark.sql.extensions", "") or ""
        if "DeltaSparkSessionExtension" not in extensions:
            log.warning(
                "spark.sql.extensions (%r) does not include io.delta.sql.DeltaSparkSessionExtension: pass "
                "--jars with the Delta jars and --conf spark.sql.extensions=io.delta.sql."
                "DeltaSparkSessionExtension --conf spark.sql.catalog.spark_catalog="
                "org.apache.spark.sql.delta.catalog.DeltaCatalog to spark-submit",
                extensions,
            )
        return session
    builder = SparkSession.builder.appName(app_name).master(master or "local[*]")
    settings = {
        "spark.jars": ",".join(delta_jars()),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        # toPandas/createDataFrame through Arrow (Databricks' default): the driver moves the round's
        # candidates and links (hundreds of thousands of rows at a million a side) as columns.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }
    if (master or "local[*]").startswith("local"):
        # In local mode the driver JVM is also the executor: Spark's 1g default is too small for the
        # signature tables and the per-bag cross-covariance results of a refine round.
        settings["spark.driver.memory"] = os.environ.get("VECLINK_DRIVER_MEMORY", "8g")
        # One machine: a few shuffle partitions per core beat Spark's cluster-sized default of 200.
        settings["spark.sql.shuffle.partitions"] = str(4 * (os.cpu_count() or 2))
        # Delta rebuilds a table's snapshot (its log replayed) at every write, in 50 tasks by default:
        # 3-4 s of task overhead per commit on two cores (event log of the 100k scale run), for logs of
        # a few kilobytes. One task per core.
        settings["spark.databricks.delta.snapshotPartitions"] = str(os.cpu_count() or 2)
        # A finished round's shuffle files are removed only after a JVM garbage collection notices
        # the round is gone; Spark forces one every 30 minutes by default, so on a long run the rounds'
        # shuffles (several GB a round at a million rows a side) pile up on the one local disk.
        settings["spark.cleaner.periodicGC.interval"] = "5min"
    settings["spark.driver.maxResultSize"] = "2g"
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
