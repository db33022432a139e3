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
