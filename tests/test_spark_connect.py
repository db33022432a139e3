"""The library through Spark Connect: a local Spark Connect server (pyspark's own, Delta configured) is
started by the module, and the run store, the notebook (the link job on the demo), a fitted model's
new-rows linking and the link job on the synthetic pair run through a remote session against it, with the
same links as in process.

The remote parts run in a child process (tests/connect_client.py): a remote session switches pyspark's
process-wide mode to Connect (``SPARK_CONNECT_MODE_ENABLED``), which would break the classic session the
rest of the suite shares. This module itself uses no Spark session: the references are the in-process
engine's (``fit_arrays``, ``LinkModel.link_arrays``), which tests/test_link_spark.py and test_model.py
show the embedded session equals. The module is skipped (with the reason) when the server cannot start:
no spark-connect jar in pyspark, no Connect client libraries (the ``connect`` extra of pyspark), no Delta
jars, or a server that does not come up.

The default run checks the store, the notebook, and new rows linked on the server by a model fitted in
process and saved and loaded through Connect (about 2 minutes on 2 cores); the link job on the synthetic
pair compared round by round with the in-process engine takes about 2 more minutes and is marked
``slow`` (``pytest -m slow tests/test_spark_connect.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from veclink_spark import LinkConfig
from veclink_spark.arrays import fit_arrays

try:
    from cluster import ClusterError, connect_server, pid_alive
    from model_case import write_model_case
    from test_link_spark import FAST
except ImportError:  # tests/ became a package
    from tests.cluster import ClusterError, connect_server, pid_alive
    from tests.model_case import write_model_case
    from tests.test_link_spark import FAST

ROOT = Path(__file__).resolve().parents[1]
CLIENT = Path(__file__).resolve().parent / "connect_client.py"
#: Seconds before a hung client process is killed.
CLIENT_TIMEOUT = float(os.environ.get("VECLINK_CONNECT_TIMEOUT", "600"))


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """A Spark Connect server on 127.0.0.1 for this module; stopped by its PID at the end."""
    base = tmp_path_factory.mktemp("connect")
    try:
        with connect_server(base) as url:
            yield url
    except ClusterError as exc:  # ConnectServerError, or no pip-installed pyspark (spark_home)
        pytest.skip(f"Spark Connect server not available: {exc}")
    else:
        assert not pid_alive(url.pid), f"the Connect server (PID {url.pid}) is still running"


def run_client(server: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one task of tests/connect_client.py against ``server``; its ``RESULT`` line as a dict."""
    run_env = dict(os.environ)
    for key in ("SPARK_CONNECT_MODE_ENABLED", "PYSPARK_GATEWAY_PORT", "SPARK_SUBMIT"):
        run_env.pop(key, None)
    run_env["SPARK_REMOTE"] = server
    run_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    run_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, str(CLIENT), *args],
        env=run_env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"connect_client {args[0]} exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
        f"stderr:\n{proc.stderr[-6000:]}"
    )
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    assert result["session"] == "pyspark.sql.connect.session.SparkSession"
    return result


def _same_links(got: pd.DataFrame, want: pd.DataFrame) -> pd.DataFrame:
    assert len(got) == len(want)
    pairs = set(zip(got.left_id, got.right_id, strict=True))
    assert pairs == set(zip(want.left_id, want.right_id, strict=True))
    merged = got.merge(want, on=["left_id", "right_id"], suffixes=("", "_ref"))
    assert len(merged) == len(got)
    assert (merged["votes"] == merged["votes_ref"]).all()
    assert np.allclose(merged["probability"], merged["probability_ref"])
    return merged


# ------------------------------------------------------------------------------- store, notebook


def test_run_store_through_connect(server, tmp_path) -> None:
    # Where the store used Delta's DeltaTable (which needs Delta's Connect plugin on the server): the
    # existence check and the clean-up of a crashed round's rows; and a failed read is still an InputError.
    seen = run_client(server, "store", str(tmp_path / "out"))
    assert seen["exists_before"] is False
    assert seen["rounds_left"] == [] and seen["last_committed"] is None
    assert seen["exists"] == {"anchors": True, "rounds": False, "plain": False, "missing": False}
    assert seen["bad_scheme"].startswith("StoreError: cannot check")
    assert seen["missing_table"].startswith("StoreError: Delta table 'links' not found")
    assert seen["missing_input"].startswith("InputError: left table not found")


@pytest.fixture(scope="module")
def notebook_run(server, tmp_path_factory):
    """notebooks/link_demo.py through the remote session, on the demo (its fast settings)."""
    out = tmp_path_factory.mktemp("connect_notebook") / "out"
    # The notebook's own inputs (data/demo/..., relative to the client's folder, the checkout: the library
    # makes local input paths absolute before Spark sees them); the output absolute, as the server would
    # resolve a relative one against its own working folder.
    env = {"VECLINK_OUTPUT": str(out), "VECLINK_NOTEBOOK_FAST": "1"}
    links = out.parent / "links.parquet"
    result = run_client(server, "notebook", str(ROOT / "notebooks" / "link_demo.py"), str(links), env=env)
    return result, out, pd.read_parquet(links)


def test_notebook_through_connect(notebook_run) -> None:
    result, out, links = notebook_run
    assert result["notebook_session"] == "pyspark.sql.connect.session.SparkSession"
    assert result["summary"]["rounds"] >= 1
    assert result["rows"] == len(links) >= 15 and int(links["is_seed"].sum()) == 30
    assert links["left_id"].is_unique and links["right_id"].is_unique
    assert (out / "links" / "_delta_log").is_dir() and (out / "model" / "arrays" / "_delta_log").is_dir()
    assert json.loads((out / "summary.json").read_text())["n_links"] == result["summary"]["n_links"]


# ------------------------------------------------------------------------------ the synthetic pair


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """tests/test_model.py's case: the synthetic pair, 15% of the left rows held back as new rows, and
    the in-process fit on the rest (float32 vectors, as the Spark job reads them)."""
    d = tmp_path_factory.mktemp("connect_data")
    pair, new = write_model_case(d)
    left32, right32 = pair.left.astype(np.float32), pair.right.astype(np.float32)
    ref = fit_arrays(
        pair.left_ids[~new],
        left32[~new],
        pair.right_ids,
        right32,
        pair.seed_left,
        pair.seed_right,
        LinkConfig.from_dict(FAST),
    )
    return pair, new, d, ref


def test_model_links_new_rows_through_connect_as_in_process(server, case, tmp_path) -> None:
    # A model fitted in process, saved and loaded through the remote session: its new-rows linking on
    # the server (LinkModel.link) gives the links the model gives in process (LinkModel.link_arrays).
    pair, new, d, ref = case
    links = tmp_path / "new.parquet"
    result = run_client(server, "model", json.dumps(FAST), str(d), str(tmp_path / "out"), str(links))
    got = pd.read_parquet(links)
    want, summary = ref.link_arrays(
        pair.left_ids[new],
        pair.left[new].astype(np.float32),
        pair.right_ids,
        pair.right.astype(np.float32),
        existing_ids=pair.left_ids[~new],
        existing=pair.left[~new].astype(np.float32),
    )
    assert len(got) > 0 and not got["is_seed"].any()
    _same_links(got, want)
    s = result["summary"]
    assert s["new_rows"] == int(new.sum()) and s["existing_rows"] == int((~new).sum())
    assert s["n_links"] == summary["n_links"] == len(got)
    assert (tmp_path / "out" / "model" / "arrays" / "_delta_log").is_dir()
    assert (tmp_path / "out" / "new" / "links" / "_delta_log").is_dir()
    # merge() on the server writes the index merge_arrays builds in process (same rows and vectors).
    remote = pd.read_parquet(tmp_path / "new-merged.parquet").sort_values(["source", "source_id"])
    local = ref.merge_arrays(
        pair.left_ids[~new], pair.left[~new].astype(np.float32), pair.right_ids, pair.right.astype(np.float32)
    ).sort_values(["source", "source_id"])
    assert result["merged_rows"] == len(local) == len(remote)
    assert list(remote["source_id"]) == list(local["source_id"])
    assert list(remote["linked_id"].fillna("")) == list(local["linked_id"].fillna(""))
    assert np.allclose(np.stack(remote["vector"].to_numpy()), np.stack(local["vector"].to_numpy()), atol=1e-6)
    assert np.allclose(
        remote["precision_estimate"].to_numpy(float),
        local["precision_estimate"].to_numpy(float),
        equal_nan=True,
    )


@pytest.fixture(scope="module")
def remote_run(server, case, tmp_path_factory):
    """The link job through the remote session (its output holds the fitted model)."""
    _, _, d, _ = case
    out = tmp_path_factory.mktemp("connect_out")
    links = out / "links.parquet"
    result = run_client(server, "link", json.dumps(FAST), str(d), str(out / "run"), str(links))
    return result, out, pd.read_parquet(links)


@pytest.mark.slow
def test_link_job_through_connect_equals_in_process(case, remote_run) -> None:
    _, _, _, ref = case
    result, out, got = remote_run
    assert len(got) > 15 and int(got["is_seed"].sum()) == 15
    merged = _same_links(got, ref.links)
    assert (merged["round"] == merged["round_ref"]).all()
    history, ref_history = result["summary"]["history"], ref.info["summary"]["history"]
    assert [h["promoted"] for h in history] == [h["promoted"] for h in ref_history]
    assert any(h["phase"] == "extend" for h in history)  # the extension's rounds ran on the server
    assert result["summary"]["verdict"] == ref.info["verdict"]
    # The run's Delta tables, written by the server, and the JSON summary, written by the client.
    for table in ("links", "summary", "anchors", "votes", "rounds", "model/arrays"):
        assert (out / "run" / table / "_delta_log").is_dir(), table
    assert json.loads((out / "run" / "summary.json").read_text())["run_id"] == "remote"
