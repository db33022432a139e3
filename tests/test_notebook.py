"""The Databricks notebooks run as plain scripts against a local session (fast settings, demo data): the
link notebook once, then the merged-index and new-rows notebooks on its output."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def linked(spark, tmp_path_factory) -> tuple[Path, dict]:
    """notebooks/link_demo.py on the demo; its output folder and its namespace."""
    out = tmp_path_factory.mktemp("notebook") / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        mp.setenv("VECLINK_OUTPUT", str(out))
        mp.setenv("VECLINK_NOTEBOOK_FAST", "1")
        ns = runpy.run_path(str(ROOT / "notebooks" / "link_demo.py"), run_name="__main__")
    return out, ns


def test_link_notebook_runs_on_the_demo(linked) -> None:
    out, ns = linked
    assert ns["summary"]["rounds"] >= 1
    assert (out / "links" / "_delta_log").is_dir()
    assert os.path.isfile(out / "summary.json")
    assert ns["links"].count() >= 15
    # The demo's truth table gives precision and recall for each committed round (rounds are committed
    # when their links change materially, so some rounds of the history have no row).
    by_round = ns["by_round"]
    assert 1 <= len(by_round) and set(by_round["round"]) <= {h["round"] for h in ns["summary"]["history"]}
    assert by_round["precision"].between(0, 1).all() and by_round["recall"].iloc[-1] > 0


def test_merge_notebook_writes_one_index(linked, monkeypatch) -> None:
    out, ns = linked
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("VECLINK_OUTPUT", str(out))
    merged = runpy.run_path(str(ROOT / "notebooks" / "merge_index.py"), run_name="__main__")
    counts = {(r["source"], r["linked"]): r["count"] for r in merged["by_source"].collect()}
    n_links = ns["links"].count()  # seeds included: each linked pair is one right row
    assert counts[("right", True)] == n_links
    assert counts[("right", True)] + counts[("right", False)] == 975
    assert ("left", True) not in counts and 0 < counts[("left", False)] == 975 - n_links
    assert (out / "merged" / "_delta_log").is_dir()


def test_new_rows_notebook_links_rows_that_arrived_later(linked, tmp_path, monkeypatch) -> None:
    import numpy as np
    import pyarrow.parquet as pq

    out, _ = linked
    monkeypatch.chdir(ROOT)
    # New left rows: 20 demo rows under fresh ids (copies of fitted objects: they compete with them).
    rows = pq.read_table(ROOT / "data" / "demo" / "left.parquet").slice(0, 20).to_pandas()
    rows["id"] = rows["id"] + 10**15
    rows["vector"] = [np.asarray(v, dtype=np.float32) for v in rows["vector"]]
    rows.to_parquet(tmp_path / "new.parquet")
    monkeypatch.setenv("VECLINK_OUTPUT", str(out))
    monkeypatch.setenv("VECLINK_NEW", str(tmp_path / "new.parquet"))
    ns = runpy.run_path(str(ROOT / "notebooks" / "new_rows.py"), run_name="__main__")
    assert ns["summary"]["new_rows"] == 20
    # Only new rows are linked (the fast run stalls, so copies of fitted rows may win none).
    ids = [r["left_id"] for r in ns["new_links"].select("left_id").collect()]
    assert len(ids) == ns["summary"]["n_links"] and set(ids) <= set(rows["id"].tolist())
    assert (out / "new_rows_out" / "links" / "_delta_log").is_dir()


def test_questions_notebook_writes_answers_a_run_takes(linked, tmp_path, monkeypatch) -> None:
    import pandas as pd

    from veclink_spark import LinkConfig, Linker

    out, ns = linked
    monkeypatch.chdir(ROOT)
    truth = pd.read_parquet(ROOT / "data" / "demo" / "truth.parquet")
    partner = dict(zip(truth["left_id"], truth["right_id"], strict=True))
    monkeypatch.setenv("VECLINK_OUTPUT", str(out))
    monkeypatch.setenv("VECLINK_TEXTS_LEFT", "data/demo/texts.parquet")
    monkeypatch.setenv("VECLINK_TEXTS_RIGHT", "data/demo/texts.parquet")
    first = runpy.run_path(str(ROOT / "notebooks" / "answer_questions.py"), run_name="__main__")
    rows = first["rows"]
    assert rows and first["shown"].where("left_text is null or right_text is null").count() == 0
    # A simulated user answers from the truth, and says no to the last question whatever it is; beside
    # the first wrong pair whose left row has a partner, it names that partner (n=ID).
    answers = [partner.get(r["left_id"]) == r["right_id"] for r in rows]
    answers[-1] = False
    wrong = [i for i, r in enumerate(rows[:-1]) if partner.get(r["left_id"], r["right_id"]) != r["right_id"]]
    assert wrong, "the demo's fast run should ask about some wrong pair"
    named = {wrong[0]: partner[rows[wrong[0]]["left_id"]]}
    text = [("y" if a else "n") + (f"={named[i]}" if i in named else "") for i, a in enumerate(answers)]
    monkeypatch.setenv("VECLINK_ANSWERS", ",".join(text))
    runpy.run_path(str(ROOT / "notebooks" / "answer_questions.py"), run_name="__main__")
    spark = first["spark"]
    written = spark.read.format("delta").load(str(out / "answers")).toPandas()
    got = dict(zip(zip(written["left_id"], written["right_id"], strict=True), written["match"], strict=True))
    expected = {(r["left_id"], r["right_id"]): a for r, a in zip(rows, answers, strict=True)}
    expected |= {(rows[i]["left_id"], right): True for i, right in named.items()}
    assert got == expected
    cfg = LinkConfig.from_dict(
        {
            "advanced": {
                "views": {"base_views": 8},
                "bootstrap": {"max_rounds": 1},
                "refine": {"max_rounds": 1},
            }
        }
    )
    again = Linker(cfg, spark).link(
        "data/demo/left.parquet",
        "data/demo/right.parquet",
        "data/demo/seeds.parquet",
        str(tmp_path / "again"),
        answers=str(out / "answers"),
    )
    yes = sum(answers)
    assert again.summary["answers"] == {
        "confirmed": yes + len(named),
        "rejected": len(answers) - yes,
        "rejected_links_dropped": again.summary["answers"]["rejected_links_dropped"],
    }
    assert again.summary["n_seeds"] == 30 + yes + len(named)
    linked_pairs = {(r["left_id"], r["right_id"]) for r in again.links.collect()}
    rejected = {(r["left_id"], r["right_id"]) for r, a in zip(rows, answers, strict=True) if not a}
    assert not linked_pairs & rejected
