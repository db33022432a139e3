"""The link job on a real Spark standalone cluster (master + two one-core workers on 127.0.0.1, started
and stopped by the test): spark-submit jobs/link.py, and the links equal a local run's."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from veclink_spark import LinkConfig, Linker
from veclink_spark.store import RunStore
from veclink_spark.synthetic import make_pair

try:
    from cluster import pid_alive, spark_submit, standalone_cluster
except ImportError:  # tests/ became a package
    from tests.cluster import pid_alive, spark_submit, standalone_cluster

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
SUBMIT_TIMEOUT = float(os.environ.get("VECLINK_CLUSTER_TIMEOUT", "600"))
CONFIG = (
    "advanced:\n  views:\n    base_views: 12\n  bootstrap:\n    max_rounds: 2\n  refine:\n    max_rounds: 1\n"
)


def _vectors(x: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1).astype(np.float32)), x.shape[1]).cast(
        pa.list_(pa.float32())
    )


def test_link_job_on_a_standalone_cluster_matches_local(spark, tmp_path: Path) -> None:
    if shutil.which("java") is None and not Path("/usr/lib/jvm").is_dir():
        pytest.skip("no Java: the standalone cluster needs a JDK 17")
    pair = make_pair(n_objects=240, alpha=0.3, n_seeds=15, seed=7)
    d = tmp_path / "data"
    d.mkdir()
    pq.write_table(pa.table({"id": pair.left_ids, "vector": _vectors(pair.left)}), d / "left.parquet")
    pq.write_table(pa.table({"id": pair.right_ids, "vector": _vectors(pair.right)}), d / "right.parquet")
    pq.write_table(pa.table({"left_id": pair.seed_left, "right_id": pair.seed_right}), d / "seeds.parquet")
    cfg_path = tmp_path / "fast.yaml"
    cfg_path.write_text(CONFIG)
    args = [
        "--left",
        str(d / "left.parquet"),
        "--right",
        str(d / "right.parquet"),
        "--seeds",
        str(d / "seeds.parquet"),
        "--config",
        str(cfg_path),
        "--run-id",
        "cluster",
    ]

    with standalone_cluster(n_workers=2, cores=1, memory="1g", base_dir=tmp_path / "cluster") as master:
        pids = list(master.pids.values())
        proc = spark_submit(
            master,
            ROOT / "jobs" / "link.py",
            [*args, "--output", str(tmp_path / "out_cluster")],
            env={"SPARK_CONF_DIR": str(master.conf_dir)},
            conf={"spark.cores.max": "2", "spark.executor.cores": "1", "spark.sql.shuffle.partitions": "4"},
            timeout=SUBMIT_TIMEOUT,
        )
        assert proc.returncode == 0, f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert not any(pid_alive(p) for p in pids)

    local = Linker(LinkConfig.from_yaml(cfg_path), spark).link(
        str(d / "left.parquet"),
        str(d / "right.parquet"),
        str(d / "seeds.parquet"),
        str(tmp_path / "out_local"),
        run_id="local",
    )
    on_cluster = RunStore(spark, str(tmp_path / "out_cluster")).read_run("links", "cluster").toPandas()
    here = local.links.toPandas()
    assert len(on_cluster) > 15
    assert set(zip(on_cluster["left_id"], on_cluster["right_id"], strict=False)) == set(
        zip(here["left_id"], here["right_id"], strict=False)
    )
