"""The Databricks notebook runs as a plain script against a local session (fast settings, demo data)."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_notebook_runs_on_the_demo(spark, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("VECLINK_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("VECLINK_NOTEBOOK_FAST", "1")
    ns = runpy.run_path(str(ROOT / "notebooks" / "link_demo.py"), run_name="__main__")
    assert ns["summary"]["rounds"] >= 1
    assert (tmp_path / "out" / "links" / "_delta_log").is_dir()
    assert os.path.isfile(tmp_path / "out" / "summary.json")
    assert ns["links"].count() >= 15


def test_model_notebook_merges_and_links_new_rows(spark, tmp_path, monkeypatch) -> None:
    import numpy as np
    import pyarrow.parquet as pq

    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    monkeypatch.setenv("VECLINK_OUTPUT", str(out))
    monkeypatch.setenv("VECLINK_NOTEBOOK_FAST", "1")
    runpy.run_path(str(ROOT / "notebooks" / "link_demo.py"), run_name="__main__")
    # New left rows: 20 demo rows under fresh ids (copies of fitted objects: they compete with them).
    rows = pq.read_table(ROOT / "data" / "demo" / "left.parquet").slice(0, 20).to_pandas()
    rows["id"] = rows["id"] + 10**15
    rows["vector"] = [np.asarray(v, dtype=np.float32) for v in rows["vector"]]
    rows.to_parquet(tmp_path / "new.parquet")
    monkeypatch.setenv("VECLINK_NEW", str(tmp_path / "new.parquet"))
    ns = runpy.run_path(str(ROOT / "notebooks" / "use_model.py"), run_name="__main__")
    counts = {r["source"]: r["count"] for r in ns["by_source"].collect()}
    assert counts["right"] == 975 and 0 < counts["left"] < 975
    assert (out / "merged" / "_delta_log").is_dir()
    assert ns["new_links"] is not None
    assert (out / "new_rows_out" / "links" / "_delta_log").is_dir()
