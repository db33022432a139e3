"""Tests of veclink_spark.inputs: reading, validating and standardising the linker's input tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame, SparkSession

from veclink_spark.errors import InputError
from veclink_spark.inputs import (
    InputColumns,
    InputSummary,
    load_embeddings,
    load_inputs,
    load_seeds,
    read_table,
    validate,
)
from veclink_spark.kernels.centre import normalise_rows, table_mean

LEFT_SCHEMA = "id bigint, vector array<float>"
RIGHT_SCHEMA = "id string, vector array<double>"
SEEDS_SCHEMA = "left_id bigint, right_id string"

LEFT_ROWS = [(1, [3.0, 4.0, 0.0]), (2, [0.0, 2.0, 0.0]), (3, [1.0, 1.0, 1.0]), (4, [-1.0, 0.0, 0.5])]
RIGHT_ROWS = [("a", [1.0, 0.0]), ("b", [0.0, -5.0]), ("c", [2.0, 2.0]), ("d", [1e-3, 2e-3])]
SEED_ROWS = [(1, "a"), (2, "b"), (3, "c")]

Tables = tuple[DataFrame, DataFrame, DataFrame]


@pytest.fixture(scope="module")
def tables(spark: SparkSession) -> Tables:
    """Good left (bigint ids, float, dim 3), right (string ids, double, dim 2) and seeds (3 pairs)."""
    left = spark.createDataFrame(LEFT_ROWS, LEFT_SCHEMA)
    right = spark.createDataFrame(RIGHT_ROWS, RIGHT_SCHEMA)
    seeds = spark.createDataFrame(SEED_ROWS, SEEDS_SCHEMA)
    return left, right, seeds


def _problems(excinfo: pytest.ExceptionInfo[InputError]) -> str:
    return str(excinfo.value)


# ------------------------------------------------------------------------------------------------
# Good inputs


def test_validate_good_inputs(tables: Tables) -> None:
    left, right, seeds = tables
    assert validate(left, right, seeds) == InputSummary(
        n_left=4, n_right=4, dim_left=3, dim_right=2, n_seeds=3
    )


def test_validation_measures_the_mean_of_the_standardised_vectors(spark: SparkSession) -> None:
    """The validation's pass is also the centring's: the summary's means are those of the unit vectors
    the job goes on with (bit for bit, in the order a pass over them adds the batches), over several
    partitions and batches."""
    rng = np.random.default_rng(3)
    rows = [(i, rng.standard_normal(5).tolist()) for i in range(3000)]
    left = spark.createDataFrame(rows, "id bigint, vector array<double>").repartition(3)
    right = spark.createDataFrame(RIGHT_ROWS, RIGHT_SCHEMA)
    seeds = spark.createDataFrame([(0, "a"), (1, "b")], SEEDS_SCHEMA)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "700")
    try:
        summary = validate(left, right, seeds)
        standard = load_embeddings(left, "id", "vector", "left").toPandas()
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    units = normalise_rows(np.stack(standard["vector"].to_numpy()).astype(np.float64))
    assert summary.mean_left is not None
    np.testing.assert_allclose(summary.mean_left, table_mean(units.sum(axis=0), len(units)), atol=2e-12)
    raw = np.array([v for _, v in rows])
    np.testing.assert_allclose(
        summary.mean_left, (raw / np.linalg.norm(raw, axis=1)[:, None]).mean(0), atol=1e-7
    )
    assert summary.mean_right is not None and summary.mean_right.shape == (2,)


def test_load_embeddings_unit_norm_keeps_direction_and_types(tables: Tables) -> None:
    left, right, _ = tables
    out_left = load_embeddings(left, "id", "vector", "left")
    out_right = load_embeddings(right, "id", "vector", "right")
    assert out_left.columns == ["id", "vector"]
    assert out_left.schema.simpleString() == "struct<id:bigint,vector:array<float>>"
    # array<double> is converted to array<float>; string ids are kept as strings.
    assert out_right.schema.simpleString() == "struct<id:string,vector:array<float>>"
    for out, rows in ((out_left, LEFT_ROWS), (out_right, RIGHT_ROWS)):
        got = {r["id"]: np.array(r["vector"], dtype=np.float64) for r in out.collect()}
        assert set(got) == {rid for rid, _ in rows}
        for rid, vec in rows:
            raw = np.array(vec, dtype=np.float64)
            np.testing.assert_allclose(np.linalg.norm(got[rid]), 1.0, rtol=1e-6)
            np.testing.assert_allclose(got[rid], raw / np.linalg.norm(raw), rtol=1e-6, atol=1e-7)


def test_normalisation_survives_extreme_doubles(spark: SparkSession) -> None:
    df = spark.createDataFrame([(1, [3e200, 4e200]), (2, [3e-200, 4e-200])], "id int, vector array<double>")
    out = load_embeddings(df, "id", "vector", "left")
    assert out.schema["id"].dataType.simpleString() == "bigint"  # int ids are cast to bigint
    for row in out.collect():
        np.testing.assert_allclose(row["vector"], [0.6, 0.8], rtol=1e-6)


def test_load_embeddings_rejects_bad_schema_without_running_spark(spark: SparkSession) -> None:
    df = spark.createDataFrame([(1.5, "x")], "key double, emb string")
    with pytest.raises(InputError) as excinfo:
        load_embeddings(df, "key", "vector", "right")
    msg = _problems(excinfo)
    assert "right.key" in msg and "ids must be integer" in msg
    assert "right.vector" in msg and "missing" in msg and "['key', 'emb']" in msg


def test_load_seeds_casts_to_table_id_types(spark: SparkSession) -> None:
    from pyspark.sql import types as T

    raw = spark.createDataFrame([(1, 10), (2, 20)], "l int, r int")
    out = load_seeds(raw, "l", "r", left_id_type=T.LongType(), right_id_type=T.StringType())
    assert out.schema.simpleString() == "struct<left_id:bigint,right_id:string>"
    assert sorted(tuple(r) for r in out.collect()) == [(1, "10"), (2, "20")]
    with pytest.raises(InputError, match=r"seeds\.r: seed ids have type string but left\.id has type bigint"):
        load_seeds(raw.selectExpr("l", "string(r) AS r"), "r", "l", left_id_type=T.LongType())


# ------------------------------------------------------------------------------------------------
# Bad inputs. Each group puts independent problems in the three tables (one validate call per group,
# to keep the file fast); every problem's text is asserted, and so is the exact number of problems,
# so a missed or a spurious report fails.


def _group_schema(spark: SparkSession, left: DataFrame, right: DataFrame, seeds: DataFrame) -> Tables:
    return (
        left.withColumnRenamed("vector", "emb"),  # missing column
        right.selectExpr("double(1.5) AS id", "vector"),  # wrong id type
        seeds.withColumnRenamed("right_id", "rid"),  # missing seed column
    )


def _group_types_and_empty(
    spark: SparkSession, left: DataFrame, right: DataFrame, seeds: DataFrame
) -> Tables:
    return (
        left.selectExpr("id", "transform(vector, x -> int(x)) AS vector"),  # wrong vector type
        right.limit(0),  # empty table (so every seed right id is also absent)
        seeds.selectExpr("string(left_id) AS left_id", "right_id"),  # string seeds vs bigint ids
    )


def _group_vector_values(spark: SparkSession, left: DataFrame, right: DataFrame, seeds: DataFrame) -> Tables:
    dims = [(1, [1.0, 0.0, 0.0]), (2, [1.0, 0.0]), (3, [0.0, 1.0, 0.0]), (4, [1.0] * 4)]
    values = [("a", [math.nan, 0.0]), ("b", [math.inf, 1.0]), ("c", [0.0, 0.0]), ("d", [1.0, None])]
    return (
        spark.createDataFrame(dims, LEFT_SCHEMA),
        spark.createDataFrame(values, RIGHT_SCHEMA),
        seeds.where("left_id = 1"),  # a single seed
    )


def _group_ids(spark: SparkSession, left: DataFrame, right: DataFrame, seeds: DataFrame) -> Tables:
    ids = [None, 1, 2, 2, 3, 3, 3]
    rows = [(i, None if i == 1 else [1.0, float(n), 0.0]) for n, i in enumerate(ids)]
    extra = spark.createDataFrame([(9, "zz"), (1, "d"), (None, "yy")], SEEDS_SCHEMA)
    return spark.createDataFrame(rows, LEFT_SCHEMA), right, seeds.union(extra)


def _group_empty_seeds(spark: SparkSession, left: DataFrame, right: DataFrame, seeds: DataFrame) -> Tables:
    return left, right, seeds.limit(0)


BAD_GROUPS = {
    "schema": (
        _group_schema,
        [
            "left.vector: vector column 'vector' is missing; the table has columns ['id', 'emb']",
            "right.id: id column has type double, but ids must be integer (int/bigint) or string",
            "seeds.right_id: right id column 'right_id' is missing; the table has columns ['left_id', 'rid']",
        ],
    ),
    "types and empty": (
        _group_types_and_empty,
        [
            "left.vector: vector column has type array<int>, "
            "but vectors must be array<float> or array<double>",
            "right: the table is empty (0 rows)",
            "seeds.left_id: seed ids have type string but left.id has type bigint",
            "seeds.right_id: 3 seed right ids absent from right.id, e.g. 'a', 'b', 'c'",
        ],
    ),
    "vector values": (
        _group_vector_values,
        [
            "left.vector: vectors of differing dimensions within the table; "
            "dims seen (rows): 3 (2), 2 (1), 4 (1)",
            "right.vector: NaN or infinite values in 2 rows",
            "right.vector: all-zero (or empty) vectors in 1 row",
            "right.vector: null elements inside the vector in 1 row",
            "seeds: only 1 seed pair(s) with both ids set; at least 2 are needed",
        ],
    ),
    "ids": (
        _group_ids,
        [
            "left.id: null ids in 1 of 7 rows",
            "left.vector: null vectors in 1 of 7 rows",
            "left.id: duplicate ids: 3 rows repeating an id of another row, e.g. 3 (3 rows), 2 (2 rows)",
            "seeds.left_id: null left ids in 1 of 6 seeds",
            "seeds.left_id: left ids used by more than one seed (1 surplus seed), e.g. 1 (2 seeds)",
            "seeds.left_id: 1 seed left id absent from left.id, e.g. 9",
            "seeds.right_id: 2 seed right ids absent from right.id, e.g. 'yy', 'zz'",
        ],
    ),
    "empty seeds": (_group_empty_seeds, ["seeds: the table is empty (0 rows)"]),
}


@pytest.mark.parametrize("group", list(BAD_GROUPS))
def test_bad_inputs_are_all_reported(spark: SparkSession, tables: Tables, group: str) -> None:
    make, expected = BAD_GROUPS[group]
    left, right, seeds = make(spark, *tables)
    with pytest.raises(InputError) as excinfo:
        validate(left, right, seeds)
    msg = _problems(excinfo)
    for text in expected:
        assert text in msg, f"{group}: {text!r} not in {msg!r}"
    header = "invalid input: " if len(expected) == 1 else f"invalid inputs ({len(expected)} problems):"
    assert msg.startswith(header), msg


def test_custom_column_names(spark: SparkSession) -> None:
    left = spark.createDataFrame([(1, [1.0, 0.0]), (2, [0.0, 1.0])], "lk int, lv array<float>")
    right = spark.createDataFrame([("x", [1.0]), ("y", [2.0])], "rk string, rv array<double>")
    seeds = spark.createDataFrame([(1, "x"), (2, "y")], "a int, b string")
    cols = InputColumns(
        left_id="lk", left_vector="lv", right_id="rk", right_vector="rv", seeds_left="a", seeds_right="b"
    )
    assert validate(left, right, seeds, cols) == InputSummary(2, 2, 2, 1, 2)


# ------------------------------------------------------------------------------------------------
# Reading by location


@pytest.fixture(scope="module")
def stored(spark: SparkSession, tables: Tables, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good tables stored as Delta (left), Parquet file and folder (right), CSV file and folder (seeds)."""
    left, right, seeds = tables
    root: Path = tmp_path_factory.mktemp("inputs")
    left.write.format("delta").save(str(root / "left_delta"))
    right.write.parquet(str(root / "right_parquet"))
    pq.write_table(
        pa.table({"id": [i for i, _ in RIGHT_ROWS], "vector": [v for _, v in RIGHT_ROWS]}),
        root / "right.parquet",
    )
    (root / "seeds.csv").write_text("left_id,right_id\n1,a\n2,b\n3,c\n")
    (root / "seeds_csv").mkdir()
    (root / "seeds_csv" / "part-0.csv").write_text("left_id,right_id\n1,a\n2,b\n")
    (root / "seeds_csv" / "part-1.csv").write_text("left_id,right_id\n3,c\n")
    return root


def _rows(df: DataFrame) -> list[tuple]:
    return sorted(tuple(r) for r in df.collect())


def test_read_delta_parquet_and_csv(spark: SparkSession, stored: Path) -> None:
    left = read_table(spark, str(stored / "left_delta"), "left")
    assert left.schema.simpleString() == "struct<id:bigint,vector:array<float>>"
    for loc in (stored / "right_parquet", stored / "right.parquet", f"file://{stored / 'right.parquet'}"):
        right = read_table(spark, str(loc), "right")
        assert right.schema.simpleString() == "struct<id:string,vector:array<double>>", loc
    assert _rows(right.select("id")) == [("a",), ("b",), ("c",), ("d",)]
    for loc in (stored / "seeds.csv", stored / "seeds_csv"):
        seeds = read_table(spark, str(loc), "seeds")
        assert seeds.schema.simpleString() == "struct<left_id:int,right_id:string>", loc
    assert _rows(seeds) == [(1, "a"), (2, "b"), (3, "c")]  # both files of the folder are read


def test_read_relative_path_and_uri_probing(
    spark: SparkSession, stored: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from veclink_spark.inputs import _read_remote

    monkeypatch.chdir(stored)
    seeds = read_table(spark, "seeds.csv", "seeds")  # no '/': not a catalog table, so a relative path
    assert seeds.columns == ["left_id", "right_id"]
    # The branch used for non-local URIs (s3://, abfss://...), exercised here on local folders:
    # Delta when it is one, Parquet when Spark says it is not a Delta table, InputError when absent.
    assert _read_remote(spark, str(stored / "left_delta"), "left").columns == ["id", "vector"]
    assert _read_remote(spark, str(stored / "right_parquet"), "right").columns == ["id", "vector"]
    with pytest.raises(InputError, match="right table not found: .*nowhere' does not exist"):
        _read_remote(spark, str(stored / "nowhere"), "right")


def test_read_catalog_table(spark: SparkSession, tables: Tables) -> None:
    left, _, _ = tables
    left.createOrReplaceTempView("veclink_test_inputs_left")
    try:
        assert spark.catalog.tableExists("veclink_test_inputs_left")  # temp views are seen
        got = read_table(spark, "veclink_test_inputs_left", "left")
        assert _rows(got.select("id")) == [(1,), (2,), (3,), (4,)]
    finally:
        spark.catalog.dropTempView("veclink_test_inputs_left")


@pytest.mark.parametrize(
    ("location", "role", "expected"),
    [
        ("{root}/nowhere", "left", ["left table not found", "{root}/nowhere", "does not exist"]),
        ("no_such_table_xyz", "right", ["right table 'no_such_table_xyz' not found", "catalog"]),
        ("{root}/seeds.csv", "left", ["left table", "is CSV, which is accepted for seeds only"]),
        ("{root}/empty_dir", "seeds", ["seeds table", "holds no data files"]),
        ("", "seeds", ["seeds table: no location given"]),
    ],
)
def test_read_table_errors(
    spark: SparkSession, stored: Path, location: str, role: str, expected: list[str]
) -> None:
    (stored / "empty_dir").mkdir(exist_ok=True)
    with pytest.raises(InputError) as excinfo:
        read_table(spark, location.format(root=stored), role)
    msg = str(excinfo.value)
    for text in expected:
        assert text.format(root=stored) in msg, f"{text!r} not in {msg!r}"


def test_load_inputs_end_to_end(spark: SparkSession, stored: Path) -> None:
    inputs = load_inputs(
        spark, str(stored / "left_delta"), str(stored / "right.parquet"), str(stored / "seeds.csv")
    )
    assert inputs.summary == InputSummary(n_left=4, n_right=4, dim_left=3, dim_right=2, n_seeds=3)
    assert inputs.left.schema.simpleString() == "struct<id:bigint,vector:array<float>>"
    assert inputs.right.schema.simpleString() == "struct<id:string,vector:array<float>>"
    # CSV seeds are inferred as int/string and come out typed like the table ids.
    assert inputs.seeds.schema.simpleString() == "struct<left_id:bigint,right_id:string>"
    assert _rows(inputs.seeds) == [(1, "a"), (2, "b"), (3, "c")]
    norms = [float(np.linalg.norm(r["vector"])) for r in inputs.right.collect()]
    np.testing.assert_allclose(norms, 1.0, rtol=1e-6)


def test_integer_csv_seeds_match_string_ids(spark: SparkSession, tmp_path: Path) -> None:
    right = spark.createDataFrame([("10", [1.0, 0.0]), ("11", [0.0, 1.0])], "id string, vector array<float>")
    left = spark.createDataFrame([(5, [1.0]), (6, [2.0])], "id bigint, vector array<float>")
    (tmp_path / "s.csv").write_text("left_id,right_id\n5,10\n6,12\n")
    seeds = read_table(spark, str(tmp_path / "s.csv"), "seeds")
    assert seeds.schema["right_id"].dataType.simpleString() == "int"
    with pytest.raises(
        InputError, match=r"seeds\.right_id: 1 seed right id absent from right\.id, e.g\. '12'"
    ):
        validate(left, right, seeds)


def test_header_only_seeds_csv_is_reported_as_empty(spark: SparkSession, tables: Tables, tmp_path) -> None:
    # A CSV with its header and no rows: Spark infers string columns (no values to infer from), which
    # must not be reported as a type mismatch with the tables' integer ids.
    left, right, _ = tables
    path = tmp_path / "seeds.csv"
    path.write_text("left_id,right_id\n")
    seeds = read_table(spark, str(path), "seeds")
    with pytest.raises(InputError) as excinfo:
        validate(left, right, seeds)
    msg = _problems(excinfo)
    assert "seeds: the table is empty (0 rows)" in msg
    assert "type" not in msg, msg
