"""A fault on a real Spark standalone cluster: one executor process is killed (SIGKILL) in the middle
of a link job; Spark's task retry must carry the job to the same links as an undisturbed local run.

Slow (a few minutes): ``bash scripts/test.sh -m slow tests/test_cluster_faults.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from veclink_spark import LinkConfig, Linker
from veclink_spark.store import RunStore
from veclink_spark.synthetic import make_pair

try:
    from cluster import spark_submit, standalone_cluster
    from test_link_spark import _vectors
except ImportError:  # tests/ became a package
    from tests.cluster import spark_submit, standalone_cluster
    from tests.test_link_spark import _vectors

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
# A fit on 300 rows a side, then full-table rounds on the cluster's executors: the kill lands in those.
CONFIG = "scale:\n  fit_rows: 300\n  max_rounds: 3\n  block_rows: 400\n"


def _executor_pids(worker_pids: list[int]) -> list[int]:
    """PIDs of the executor JVMs the given worker daemons launched (their children, from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid in worker_pids and b"CoarseGrainedExecutorBackend" in cmd:
            out.append(int(entry))
    return out


def test_a_killed_executor_does_not_change_the_links(spark, tmp_path: Path) -> None:
    if shutil.which("java") is None and not Path("/usr/lib/jvm").is_dir():
        pytest.skip("no Java: the standalone cluster needs a JDK 17")
    pair = make_pair(n_objects=2400, alpha=0.3, n_seeds=15, seed=11)
    d = tmp_path / "data"
    d.mkdir()

    pq.write_table(pa.table({"id": pair.left_ids, "vector": _vectors(pair.left)}), d / "left.parquet")
    pq.write_table(pa.table({"id": pair.right_ids, "vector": _vectors(pair.right)}), d / "right.parquet")
    pq.write_table(pa.table({"left_id": pair.seed_left, "right_id": pair.seed_right}), d / "seeds.parquet")
    cfg_path = tmp_path / "conf.yaml"
    cfg_path.write_text(CONFIG)
    inputs = ["--left", str(d / "left.parquet"), "--right", str(d / "right.parquet")]
    inputs += ["--seeds", str(d / "seeds.parquet"), "--config", str(cfg_path)]
    out = tmp_path / "out_cluster"
    killed: list[int] = []

    with standalone_cluster(n_workers=2, cores=1, memory="1g", base_dir=tmp_path / "cluster") as master:
        workers = [pid for name, pid in master.pids.items() if name.startswith("worker")]

        def kill_after_the_fit() -> None:
            # The fit is committed before the full-table rounds start: kill an executor during them.
            deadline = time.time() + 600
            while time.time() < deadline and not (out / "rounds" / "_delta_log").is_dir():
                time.sleep(0.5)
            time.sleep(3)
            for pid in _executor_pids(workers)[:1]:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        killer = threading.Thread(target=kill_after_the_fit, daemon=True)
        killer.start()
        proc = spark_submit(
            master,
            ROOT / "jobs" / "link.py",
            [*inputs, "--output", str(out), "--run-id", "faulty"],
            env={"SPARK_CONF_DIR": str(master.conf_dir)},
            conf={"spark.cores.max": "2", "spark.executor.cores": "1", "spark.sql.shuffle.partitions": "4"},
            timeout=900,
        )
        killer.join(timeout=5)
        assert proc.returncode == 0, f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert killed, "no executor process was found to kill"

    local = Linker(LinkConfig.from_yaml(cfg_path), spark).link(
        str(d / "left.parquet"), str(d / "right.parquet"), str(d / "seeds.parquet"), str(tmp_path / "local")
    )
    on_cluster = RunStore(spark, str(out)).read_run("links", "faulty").toPandas()
    here = local.links.toPandas()
    assert len(here) > 100
    assert set(zip(on_cluster["left_id"], on_cluster["right_id"], strict=True)) == set(
        zip(here["left_id"], here["right_id"], strict=True)
    )
