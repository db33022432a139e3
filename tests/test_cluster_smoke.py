"""Smoke test on a real Spark standalone cluster: master + 2 workers on 127.0.0.1, app via spark-submit.

Checks that a spark-submit'ed app gets its session from get_or_create_session(), writes and reads a Delta
table with tasks on both workers' executors, and that every daemon is gone after. (RunStore itself is
tested on a local session in test_store.py; the app stays small to keep this test near a minute.)
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

try:
    from cluster import pid_alive, spark_submit, standalone_cluster
except ImportError:  # tests/ became a package
    from tests.cluster import pid_alive, spark_submit, standalone_cluster

pytestmark = pytest.mark.cluster

#: Seconds before a hung spark-submit is killed; raise it on a very loaded machine.
SUBMIT_TIMEOUT = float(os.environ.get("VECLINK_CLUSTER_TIMEOUT", "240"))

APP = textwrap.dedent(
    """
    import json
    import os
    import sys

    import pandas as pd
    from pyspark.sql import functions as F

    from veclink_spark.session import get_or_create_session, running_under_spark_submit

    out = sys.argv[1]
    under_submit = running_under_spark_submit()
    spark = get_or_create_session(app_name="ignored-under-submit")


    @F.pandas_udf("string")
    def task_dir(ids: pd.Series) -> pd.Series:
        # An executor's Python workers run in the executor's folder inside its worker's work dir.
        return pd.Series([os.getcwd()] * len(ids))


    df = (
        spark.range(0, 400, 1, numPartitions=4)
        .withColumn("part", F.spark_partition_id())
        .withColumn("task_dir", task_dir("id"))
    )
    df.write.format("delta").mode("overwrite").save(out + "/plain")
    back = spark.read.format("delta").load(out + "/plain")
    agg = back.agg(
        F.count("*").alias("n"), F.sum("id").alias("s"), F.countDistinct("part").alias("p")
    ).first()
    dirs = sorted(r["task_dir"] for r in back.select("task_dir").distinct().collect())
    result = {
        "under_submit": under_submit,
        "master": spark.conf.get("spark.master"),
        "rows": agg["n"],
        "id_sum": agg["s"],
        "partitions": agg["p"],
        "files": len(back.inputFiles()),
        "task_dirs": dirs,
    }
    print("SMOKE_RESULT " + json.dumps(result), flush=True)
    spark.stop()
    """
)


def test_standalone_cluster_runs_a_delta_app_on_both_workers(tmp_path: Path) -> None:
    if shutil.which("java") is None and not Path("/usr/lib/jvm").is_dir():
        pytest.skip("no Java: the standalone cluster needs a JDK 17")
    app = tmp_path / "smoke_app.py"
    app.write_text(APP)
    out = tmp_path / "out"

    with standalone_cluster(n_workers=2, cores=1, memory="1g", base_dir=tmp_path / "cluster") as master:
        pids = dict(master.pids)
        assert set(pids) == {"master", "worker-1", "worker-2"}
        assert all(pid_alive(pid) for pid in pids.values())
        proc = spark_submit(
            master,
            app,
            [str(out)],
            env={"SPARK_CONF_DIR": str(master.conf_dir)},
            conf={
                "spark.cores.max": "2",
                "spark.executor.cores": "1",
                # Start tasks only once both executors are there, so both get some of the 4 tasks.
                "spark.scheduler.minRegisteredResourcesRatio": "1.0",
                "spark.scheduler.maxRegisteredResourcesWaitingTime": "60s",
            },
            timeout=SUBMIT_TIMEOUT,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("SMOKE_RESULT ")]
        assert proc.returncode == 0 and lines, (
            f"spark-submit exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
            f"stderr:\n{proc.stderr[-5000:]}"
        )
        work_dirs = {name: str(path) for name, path in master.work_dirs.items()}

    result = json.loads(lines[-1][len("SMOKE_RESULT ") :])
    assert result["under_submit"] is True
    assert result["master"] == str(master)
    assert result["rows"] == 400
    assert result["id_sum"] == sum(range(400))
    assert result["partitions"] == 4
    assert result["files"] == 4
    # Each task recorded the folder its executor ran in: both workers' folders must appear.
    dirs = result["task_dirs"]
    used = {name for name, path in work_dirs.items() if any(d.startswith(path + "/") for d in dirs)}
    assert used == {"worker-1", "worker-2"}, result["task_dirs"]

    # After the with-block every daemon is stopped.
    assert [name for name, pid in pids.items() if pid_alive(pid)] == []
