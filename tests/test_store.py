"""RunStore: round-trips, idempotent rewrites, run isolation, commits and crash clean-up on local Delta."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from veclink_spark import store as store_module
from veclink_spark.errors import StoreError
from veclink_spark.store import TABLE_ROUNDS, RunStore

SCHEMA = "left_id long, right_id long, score double"


def rows_of(df, *cols: str) -> list[tuple]:
    """The rows of ``df`` projected on ``cols``, sorted: an order-free comparison."""
    return sorted(tuple(r) for r in df.select(*cols).collect())


@pytest.fixture()
def store(spark, tmp_path: Path) -> RunStore:
    return RunStore(spark, str(tmp_path / "out"))


def frame(spark, rows: list[tuple]):
    return spark.createDataFrame(rows, schema=SCHEMA)


def test_write_round_round_trip(spark, store: RunStore) -> None:
    assert not store.exists("anchors")
    store.write_round("anchors", frame(spark, [(1, 10, 0.5), (2, 20, 0.25)]), "run-1", 1)

    assert store.exists("anchors")
    assert Path(store.path("anchors"), "_delta_log").is_dir()
    back = store.read_round("anchors", "run-1", 1)
    assert set(back.columns) == {"left_id", "right_id", "score", "run_id", "round"}
    assert dict(back.dtypes)["run_id"] == "string"
    assert dict(back.dtypes)["round"] == "int"
    assert rows_of(back, "left_id", "right_id", "score", "run_id", "round") == [
        (1, 10, 0.5, "run-1", 1),
        (2, 20, 0.25, "run-1", 1),
    ]
    # The table is partitioned by run_id, as the module promises.
    from delta.tables import DeltaTable

    detail = DeltaTable.forPath(spark, store.path("anchors")).detail().first()
    assert list(detail["partitionColumns"]) == ["run_id"]


def test_write_round_is_idempotent_and_touches_only_its_slice(spark, store: RunStore) -> None:
    round1 = frame(spark, [(1, 10, 0.5), (2, 20, 0.25)])
    store.write_round("votes", round1, "r", 1)
    store.write_round("votes", frame(spark, [(3, 30, 0.75)]), "r", 2)
    store.write_round("votes", round1, "r", 1)  # a retry of round 1
    assert store.read_round("votes", "r", 1).count() == 2
    assert store.read_rounds("votes", "r").count() == 3

    # A rewrite with other content replaces the slice and leaves round 2 alone.
    store.write_round("votes", frame(spark, [(9, 90, 1.0)]), "r", 1)
    assert rows_of(store.read_rounds("votes", "r"), "round", "left_id") == [(1, 9), (2, 3)]
    assert rows_of(store.read_rounds("votes", "r", upto=1), "round", "left_id") == [(1, 9)]


def test_two_runs_in_one_table_do_not_clash(spark, store: RunStore) -> None:
    store.write_round("anchors", frame(spark, [(1, 1, 1.0)]), "run_a", 1)
    store.write_round("anchors", frame(spark, [(2, 2, 2.0), (3, 3, 3.0)]), "run_b", 1)
    store.write_round("anchors", frame(spark, [(4, 4, 4.0)]), "run_a", 1)  # rewrite a's round 1 only
    assert rows_of(store.read_round("anchors", "run_a", 1), "left_id") == [(4,)]
    assert rows_of(store.read_round("anchors", "run_b", 1), "left_id") == [(2,), (3,)]

    store.replace_run("links", frame(spark, [(5, 5, 0.9)]), "run_a")
    store.replace_run("links", frame(spark, [(6, 6, 0.8), (7, 7, 0.7)]), "run_b")
    store.replace_run("links", frame(spark, [(8, 8, 0.6)]), "run_a")  # replaces a's rows, keeps b's
    store.replace_run("links", frame(spark, [(8, 8, 0.6)]), "run_a")  # and a retry changes nothing
    assert rows_of(store.read_run("links", "run_a"), "left_id", "run_id") == [(8, "run_a")]
    assert rows_of(store.read_run("links", "run_b"), "left_id") == [(6,), (7,)]
    assert "round" not in store.read_run("links", "run_a").columns


def test_commits_and_last_committed_round(store: RunStore) -> None:
    assert store.last_committed_round("r1") is None
    assert store.committed_rounds("r1") == []

    store.commit_round("r1", 2, {"promoted": 7, "threshold": 0.5})
    store.commit_round("r1", 1, {"promoted": 3})
    store.commit_round("r1", 2, {"promoted": 7, "threshold": 0.5})  # retried commit: no duplicate
    store.commit_round("other", 5, {"promoted": 1})

    assert store.last_committed_round("r1") == 2
    assert store.last_committed_round("other") == 5
    assert store.last_committed_round("never") is None
    assert store.committed_rounds("r1") == [{"promoted": 3}, {"promoted": 7, "threshold": 0.5}]

    marker = store.read_run(TABLE_ROUNDS, "r1")
    assert dict(marker.dtypes)["committed_at"] == "timestamp"
    assert marker.count() == 2
    assert marker.where("committed_at IS NULL").count() == 0


def test_commit_rejects_info_that_is_not_json(store: RunStore) -> None:
    with pytest.raises(StoreError, match="not JSON-serialisable"):
        store.commit_round("r1", 1, {"bad": object()})
    assert not store.exists(TABLE_ROUNDS)


def test_discard_uncommitted(spark, store: RunStore) -> None:
    for round_no in (1, 2, 3):
        rows = [(round_no, round_no * 10, float(round_no))]
        store.write_round("anchors", frame(spark, rows), "crashed", round_no)
        store.write_round("votes", frame(spark, rows), "crashed", round_no)
        store.write_round("votes", frame(spark, rows), "neighbour", round_no)  # uncommitted, other run
    store.commit_round("crashed", 1, {})
    store.commit_round("crashed", 2, {})
    store.replace_run("links", frame(spark, [(1, 1, 1.0)]), "crashed")

    store.discard_uncommitted("crashed", ["anchors", "votes", "not_written_yet"])
    assert rows_of(store.read_rounds("anchors", "crashed"), "round") == [(1,), (2,)]
    assert rows_of(store.read_rounds("votes", "crashed"), "round") == [(1,), (2,)]
    assert rows_of(store.read_rounds("votes", "neighbour"), "round") == [(1,), (2,), (3,)]

    # No commit at all: every row of that run goes, the other run's rows stay.
    store.discard_uncommitted("neighbour", ["votes"])
    assert store.read_rounds("votes", "neighbour").count() == 0
    assert store.read_rounds("votes", "crashed").count() == 2

    with pytest.raises(StoreError, match="no 'round' column"):
        store.discard_uncommitted("crashed", ["links"])


@pytest.mark.parametrize("bad", ["", "a b", "x' OR '1'='1", "run/1", "ä", None])
def test_bad_run_id_is_rejected(spark, store: RunStore, bad) -> None:
    with pytest.raises(StoreError, match="invalid run id"):
        store.write_round("anchors", frame(spark, [(1, 1, 1.0)]), bad, 1)
    with pytest.raises(StoreError, match="invalid run id"):
        store.last_committed_round(bad)
    assert not store.exists("anchors")


def test_bad_names_and_rounds_are_rejected(spark, store: RunStore) -> None:
    with pytest.raises(StoreError, match="invalid table name"):
        store.path("../escape")
    with pytest.raises(StoreError, match="invalid round number"):
        store.write_round("anchors", frame(spark, [(1, 1, 1.0)]), "r", -1)
    with pytest.raises(StoreError, match="invalid round number"):
        store.read_round("anchors", "r", True)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="invalid output location"):
        RunStore(spark, "")


def test_reading_a_missing_table_raises_store_error(store: RunStore) -> None:
    with pytest.raises(StoreError, match="not found") as info:
        store.read_round("anchors", "r", 1)
    assert store.path("anchors") in str(info.value)
    with pytest.raises(StoreError, match="not found"):
        store.read_run("links", "r")


def test_io_failure_is_wrapped_with_the_path(spark, store: RunStore) -> None:
    store.write_round("anchors", frame(spark, [(1, 1, 1.0)]), "r", 1)
    wrong_types = spark.createDataFrame([("a", "b")], schema="left_id string, other string")
    with pytest.raises(StoreError, match="failed") as info:
        store.write_round("anchors", wrong_types, "r", 2)
    assert store.path("anchors") in str(info.value)
    assert store.read_rounds("anchors", "r").count() == 1


def test_write_json_local_path_and_file_uri(spark, tmp_path: Path) -> None:
    plain = RunStore(spark, str(tmp_path / "plain"))
    location = plain.write_json("summary.json", {"links": 3, "f1": 0.5})
    assert location == str(tmp_path / "plain" / "summary.json")
    assert json.loads(Path(location).read_text()) == {"f1": 0.5, "links": 3}

    uri = RunStore(spark, (tmp_path / "viauri").as_uri() + "/")
    location = uri.write_json("report/summary.json", [1, 2])
    assert location == (tmp_path / "viauri").as_uri() + "/report/summary.json"
    assert json.loads((tmp_path / "viauri" / "report" / "summary.json").read_text()) == [1, 2]

    with pytest.raises(StoreError, match="invalid JSON file name"):
        plain.write_json("../x.json", {})
    with pytest.raises(StoreError, match="not JSON-serialisable"):
        plain.write_json("x.json", {"a": {1, 2}})


def test_write_json_through_spark_for_non_local_uris(spark, tmp_path: Path, monkeypatch) -> None:
    # Non-local URIs (dbfs:, abfss:, s3a:) go through Spark's text writer; exercise that branch on a
    # local folder by making the store treat every location as non-local.
    monkeypatch.setattr(store_module, "local_path", lambda location: None)
    store = RunStore(spark, str(tmp_path / "remote"))
    location = store.write_json("summary.json", {"rounds": [1, 2], "name": "x"})
    assert Path(location).is_dir()
    text = spark.read.text(location, wholetext=True).first()["value"]
    assert json.loads(text) == {"rounds": [1, 2], "name": "x"}
    store.write_json("summary.json", {"rounds": []})  # overwrites
    assert json.loads(spark.read.text(location, wholetext=True).first()["value"]) == {"rounds": []}


def test_runs_creating_one_new_table_at_once_all_land(spark, tmp_path: Path) -> None:
    # Several runs write their first round into an output that has no tables yet, at the same time
    # (threads of one session, as concurrent jobs into one folder): whichever loses the creation race
    # retries its slice, so every run's rows land once.
    from concurrent.futures import ThreadPoolExecutor

    out = str(tmp_path / "shared")

    def write(i: int) -> None:
        RunStore(spark, out).write_round("votes", frame(spark, [(i, i, float(i))]), f"run{i}", 1)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    assert rows_of(RunStore(spark, out)._load("votes"), "run_id", "left_id") == [
        (f"run{i}", i) for i in range(4)
    ]


def test_concurrent_conflicts_are_told_apart_from_other_failures() -> None:
    lost = RuntimeError("[DELTA_PROTOCOL_CHANGED] ProtocolChangedException: The protocol version ...")
    assert store_module.is_concurrent_conflict(lost)
    assert not store_module.is_concurrent_conflict(RuntimeError("[DELTA_FAILED_TO_MERGE_FIELDS] types"))


@pytest.mark.parametrize("connect", [False, True], ids=["DeltaTable", "schema-probe"])
def test_exists_tells_delta_tables_from_other_locations(spark, tmp_path: Path, monkeypatch, connect) -> None:
    # On Spark Connect (no Delta Connect plugin on the server) the check asks for the table's schema
    # instead of calling DeltaTable.isDeltaTable: both ways must give the same answers. The probe is
    # exercised here on the classic session; tests/test_spark_connect.py runs it through Connect.
    if connect:
        monkeypatch.setattr(store_module, "is_connect", lambda session: True)
    store = RunStore(spark, str(tmp_path / "out"))
    store.write_round("anchors", frame(spark, [(1, 1, 1.0)]), "r", 1)
    spark.range(3).write.parquet(store.path("plain"))
    (tmp_path / "out" / "empty").mkdir()
    assert store.exists("anchors")
    assert not store.exists("missing") and not store.exists("plain") and not store.exists("empty")
    with pytest.raises(StoreError, match="cannot check"):
        RunStore(spark, "nosuchscheme://bucket/out").exists("anchors")


def test_discard_uncommitted_under_a_relative_output(spark, tmp_path: Path, monkeypatch) -> None:
    # A second run into the same relative output (the demo run twice) deletes through SQL on
    # delta.`<path>`, which Delta accepts only for absolute paths.
    monkeypatch.chdir(tmp_path)
    store = RunStore(spark, "out")
    store.write_round("votes", frame(spark, [(1, 10, 1.0)]), "first", 1)
    store.commit_round("first", 1, {})
    store.write_round("votes", frame(spark, [(2, 20, 2.0)]), "first", 2)  # uncommitted
    store.discard_uncommitted("first", ["votes"])
    assert rows_of(store.read_rounds("votes", "first"), "round") == [(1,)]


def test_a_table_of_an_earlier_version_gains_the_new_columns(spark, store: RunStore) -> None:
    # links tables written before precision_estimate existed keep their runs; a new run adds the column
    store.replace_run("links", spark.createDataFrame([(1, 2)], "left_id long, right_id long"), "old")
    new = spark.createDataFrame([(3, 4, 0.9)], "left_id long, right_id long, precision_estimate double")
    store.replace_run("links", new, "new")
    rows = {
        r["run_id"]: r["precision_estimate"]
        for run in ("old", "new")
        for r in store.read_run("links", run).collect()
    }
    assert rows == {"old": None, "new": 0.9}
