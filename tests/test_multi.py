"""Several models: pairwise runs and triangle confirmation (veclink_spark.multi, jobs/link_many.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from veclink_spark.multi import confirm, confirm_arrays
from veclink_spark.synthetic import make_tables

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "jobs"))
import link_many  # noqa: E402


def _links(pairs: list[tuple[int, int]], seeds: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "left_id": [a for a, _ in pairs],
            "right_id": [b for _, b in pairs],
            "probability": 0.9,
            "is_seed": [i < seeds for i in range(len(pairs))],
        }
    )


# A-B: (1,10) closed by C's row 100 (1-100 and 10-100); (2,20) not (A-C 2-201, B-C 20-200); (3,30) not.
HAND = {
    ("A", "B"): _links([(1, 10), (2, 20), (3, 30)]),
    ("B", "C"): _links([(10, 100), (20, 200)]),
    ("A", "C"): _links([(1, 100), (2, 201)]),
}
EXPECTED = {
    ("A", "B", "1", "10"): ["C"],
    ("A", "B", "2", "20"): [],
    ("A", "B", "3", "30"): [],
    ("B", "C", "10", "100"): ["A"],
    ("B", "C", "20", "200"): [],
    ("A", "C", "1", "100"): ["B"],
    ("A", "C", "2", "201"): [],
}


def _by_key(df: pd.DataFrame) -> dict[tuple[str, str, str, str], list[str]]:
    return {
        (r.left_table, r.right_table, r.left_id, r.right_id): list(r.confirmed_by)
        for r in df.itertuples(index=False)
    }


def test_triangles_confirm_exactly_the_closed_links(spark) -> None:
    local = confirm_arrays(HAND)
    assert _by_key(local) == EXPECTED
    assert local["confirmed"].tolist() == [bool(v) for v in EXPECTED.values()]
    remote = confirm({k: spark.createDataFrame(v) for k, v in HAND.items()}).toPandas()
    assert _by_key(remote) == EXPECTED  # Spark joins == the in-process twin
    assert set(remote.columns) == set(local.columns)


def _write_case(folder: Path) -> tuple[list[str], dict[str, set[tuple[str, str]]]]:
    """Three synthetic tables (parquet), seeds with one column per table, and each pair's truth."""
    case = make_tables(n_objects=600, alpha=0.4, n_seeds=15, seed=5)
    names = ["m1", "m2", "m3"]
    for name, ids, x in zip(names, case.ids, case.vectors, strict=True):
        pd.DataFrame({"id": ids, "vector": list(x)}).to_parquet(folder / f"{name}.parquet")
    id_of = [
        dict(zip(o.tolist(), i.tolist(), strict=True)) for o, i in zip(case.objects, case.ids, strict=True)
    ]
    seeds = pd.DataFrame({n: [id_of[t][o] for o in case.seed_objects.tolist()] for t, n in enumerate(names)})
    seeds.to_parquet(folder / "seeds.parquet")
    truth = {}
    for a in range(3):
        for b in range(a + 1, 3):
            common = set(id_of[a]) & set(id_of[b])
            truth[f"{names[a]}__{names[b]}"] = {(str(id_of[a][o]), str(id_of[b][o])) for o in common}
    return names, truth


def test_link_many_job_links_pairs_and_confirmation_raises_precision(spark, tmp_path) -> None:
    names, truth = _write_case(tmp_path)
    out = tmp_path / "out"
    argv = [a for n in names for a in ("--table", f"{n}={tmp_path / (n + '.parquet')}")]
    argv += ["--seeds", str(tmp_path / "seeds.parquet"), "--output", str(out), "--run-id", "three"]
    assert link_many.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [(p["left"], p["right"]) for p in summary["pairs"]] == [("m1", "m2"), ("m1", "m3"), ("m2", "m3")]
    for p in summary["pairs"]:
        assert (out / f"{p['left']}__{p['right']}" / "links" / "_delta_log").is_dir()
    got = spark.read.format("delta").load(str(out / "confirmed")).where("not is_seed").toPandas()
    for p in summary["pairs"]:
        rows = got[(got.left_table == p["left"]) & (got.right_table == p["right"])]
        assert len(rows) == p["n_links"] > 0 and rows["confirmed"].sum() == p["n_confirmed"]
        true = truth[f"{p['left']}__{p['right']}"]
        right = np.array([k in true for k in zip(rows.left_id, rows.right_id, strict=True)])
        conf = rows["confirmed"].to_numpy(bool)
        assert conf.any() and right[conf].mean() >= right.mean()  # the third model's check helps
    # Run again with the run id: every pair's finished run is found, the same confirmed links.
    assert link_many.main(argv) == 0
    again = spark.read.format("delta").load(str(out / "confirmed")).where("not is_seed").toPandas()
    assert len(again) == len(got) and again["confirmed"].sum() == got["confirmed"].sum()


@pytest.mark.parametrize(
    "tables, seeds_cols, message",
    [
        (["m1", "m2"], ["m1", "m2"], "at least three tables"),
        (["m1", "m2", "m3"], ["m1", "m2"], "no column for the tables ['m3']"),
        (["m1", "m2", "m_3-x"], ["m1", "m2", "m_3-x"], "table names must be"),
    ],
)
def test_link_many_refuses_bad_input_before_writing(
    spark, tmp_path, capsys, tables, seeds_cols, message
) -> None:
    x = np.eye(4, dtype=np.float32)
    pd.DataFrame({"id": [1, 2, 3, 4], "vector": list(x)}).to_parquet(tmp_path / "t.parquet")
    pd.DataFrame({c: [1, 2] for c in seeds_cols}).to_parquet(tmp_path / "seeds.parquet")
    out = tmp_path / "out"
    argv = [a for n in tables for a in ("--table", f"{n}={tmp_path / 't.parquet'}")]
    assert link_many.main(argv + ["--seeds", str(tmp_path / "seeds.parquet"), "--output", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
