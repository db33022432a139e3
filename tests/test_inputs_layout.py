"""Input layouts: one Parquet file in a single row group, many small files and a Delta table are read
into partitions sized by bytes and linked alike; row groups the heap cannot hold stop the job early
with exit 2 and one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F
from test_link_spark import FAST, _job, _vectors

from veclink_spark import LinkConfig, Linker
from veclink_spark import inputs as inputs_module
from veclink_spark.errors import InputError
from veclink_spark.inputs import RowGroup, load_inputs, partitions_for, row_group_problem, row_groups
from veclink_spark.synthetic import make_pair

ROOT = Path(__file__).resolve().parents[1]
# test_link_spark.py's quick run with fewer rounds: what is checked is that the layouts give the same
# links, not how good they are.
QUICK = {**FAST, "advanced": {**FAST["advanced"], "refine": {"max_rounds": 2, "mixture_separation": 0.0}}}
#: Partition size for these tests: ~280 rows of 48-d floats (~63 KB) make several partitions.
TARGET = 16 * 1024


def _table(ids: np.ndarray, x: np.ndarray) -> pa.Table:
    return pa.table({"id": ids, "vector": _vectors(x)})


@pytest.fixture(scope="module")
def layouts(spark, tmp_path_factory):
    """The same pair three ways: one file in a single row group per side, a folder of four files per
    side, and a Delta table per side; seeds beside."""
    pair = make_pair(n_objects=400, alpha=0.3, n_seeds=15, seed=1)
    d = tmp_path_factory.mktemp("layouts")
    for side, ids, x in (("left", pair.left_ids, pair.left), ("right", pair.right_ids, pair.right)):
        table = _table(ids, x)
        pq.write_table(table, d / f"{side}.parquet")  # pyarrow's default: one row group
        (d / f"{side}_files").mkdir()
        for k, chunk in enumerate(np.array_split(np.arange(table.num_rows), 4)):
            pq.write_table(table.take(chunk), d / f"{side}_files" / f"part-{k}.parquet")
        spark.read.parquet(str(d / f"{side}_files")).write.format("delta").save(str(d / f"{side}_delta"))
    pq.write_table(pa.table({"left_id": pair.seed_left, "right_id": pair.seed_right}), d / "seeds.parquet")
    return d


@pytest.fixture()
def small_partitions(spark):
    """Partitions of TARGET bytes for the test (the session's setting restored after)."""
    key = "spark.sql.files.maxPartitionBytes"
    old = spark.conf.get(key)
    spark.conf.set(key, str(TARGET))
    yield TARGET
    spark.conf.set(key, old)


def _partitions(df) -> int:
    return df.select(F.spark_partition_id().alias("p")).distinct().count()


def test_partitions_for_cuts_only_oversized_partitions() -> None:
    mib = 2**20
    # A million 768-d float rows in one row group: 3 GiB as one partition, cut into 128 MiB ones.
    assert partitions_for(1_000_000, 768, 4, 1_000_000, 128 * mib) == 24
    # Files Spark cut already (65,000-row row groups, 0.19 GiB): left as read.
    assert partitions_for(1_000_000, 768, 4, 65_000, 128 * mib) is None
    # Doubles take twice the bytes.
    assert partitions_for(100_000, 384, 8, 100_000, 128 * mib) == 3
    assert partitions_for(100_000, 384, 4, 100_000, 128 * mib) is None


def test_single_row_group_is_cut_by_bytes_and_other_layouts_kept(spark, layouts, small_partitions) -> None:
    seeds = str(layouts / "seeds.parquet")
    single = load_inputs(spark, str(layouts / "left.parquet"), str(layouts / "right.parquet"), seeds)
    assert pq.ParquetFile(layouts / "left.parquet").metadata.num_row_groups == 1
    assert single.summary.largest_partition_left == single.summary.n_left  # one partition as read
    row = 48 * 4 + 32
    assert _partitions(single.left) == -(-single.summary.n_left * row // TARGET) > 1
    assert _partitions(single.right) > 1
    files = load_inputs(spark, str(layouts / "left_files"), str(layouts / "right_files"), seeds)
    assert files.summary.largest_partition_left < files.summary.n_left / 3  # kept as Spark read it
    assert _partitions(files.left) == 4
    delta = load_inputs(spark, str(layouts / "left_delta"), str(layouts / "right_delta"), seeds)
    assert files.summary == delta.summary == single.summary
    # The same rows and vectors whatever the layout.
    a = single.left.orderBy("id").toPandas()
    b = files.left.orderBy("id").toPandas()
    assert (a["id"] == b["id"]).all() and np.array_equal(np.stack(a["vector"]), np.stack(b["vector"]))


def test_layouts_give_identical_links(spark, layouts, small_partitions, tmp_path) -> None:
    links = {}
    for name, left, right in (
        ("single", "left.parquet", "right.parquet"),
        ("files", "left_files", "right_files"),
        ("delta", "left_delta", "right_delta"),
    ):
        result = Linker(LinkConfig.from_dict(QUICK), spark).link(
            str(layouts / left), str(layouts / right), str(layouts / "seeds.parquet"), str(tmp_path / name)
        )
        got = result.links.toPandas().sort_values(["left_id", "right_id"]).reset_index(drop=True)
        links[name] = got[["left_id", "right_id", "votes", "round", "is_seed"]]
    assert len(links["single"]) > 15
    assert links["single"].equals(links["files"])
    assert links["single"].equals(links["delta"])


def test_row_group_problem_names_the_table_and_what_to_change() -> None:
    gib = 2**30
    big = [RowGroup("left", "/data/left.parquet", 1_048_576, int(3.1 * gib))]
    right = [RowGroup("right", "/data/right.parquet", 1_048_576, int(1.6 * gib))]
    # The case: a million rows a side in one row group each, 8 GiB, two cores: it runs.
    assert row_group_problem(big + right, 8 * gib, 2, "spark.driver.memory") is None
    message = row_group_problem(big + right, 4 * gib, 2, "spark.driver.memory")
    assert message is not None and "\n" not in message
    assert "left table '/data/left.parquet'" in message and "1,048,576 rows" in message
    assert (
        "row_group_size=" in message
        and "spark.driver.memory" in message
        and "VECLINK_DRIVER_MEMORY" in message
    )
    assert row_group_problem([], 1, 2, "spark.driver.memory") is None


def test_row_groups_read_from_footers_only_the_columns_read(tmp_path) -> None:
    x = np.ones((1000, 64), dtype=np.float32)
    table = _table(np.arange(1000), x).append_column("text", pa.array(["x" * 1000] * 1000))
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=400)
    groups = row_groups(str(tmp_path / "t.parquet"), "left", ["id", "vector"])
    assert [g.rows for g in groups] == [400, 400, 200]
    assert all(g.nbytes < 400 * 64 * 4 * 2 for g in groups)  # the text column left out
    assert row_groups(str(tmp_path / "nowhere"), "left", ["id", "vector"]) == []


def test_job_stops_early_when_a_row_group_cannot_be_held(
    spark, layouts, tmp_path, capsys, monkeypatch
) -> None:
    # A heap of 64 KiB stands for a machine too small for the file's one row group (~63 KB of rows).
    monkeypatch.setattr(inputs_module, "_task_heap", lambda spark: (64 * 1024, 2, "spark.driver.memory"))
    out = tmp_path / "out"
    code = _job().main(
        [
            *("--left", str(layouts / "left.parquet"), "--right", str(layouts / "right.parquet")),
            *("--seeds", str(layouts / "seeds.parquet"), "--output", str(out)),
        ]
    )
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("veclink-spark:")]
    assert code == 2 and len(err) == 1 and not out.exists()
    assert "row group" in err[0] and "row_group_size=" in err[0] and "spark.driver.memory" in err[0]
    with pytest.raises(InputError, match="row group"):
        load_inputs(
            spark,
            str(layouts / "left.parquet"),
            str(layouts / "right.parquet"),
            str(layouts / "seeds.parquet"),
        )
