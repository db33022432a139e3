"""The Spark Connect side of tests/test_spark_connect.py: one task through a remote session, in its own
process.

pyspark keeps one kind of session per Python process: building a remote session sets
``SPARK_CONNECT_MODE_ENABLED`` in the process's environment, after which ``pyspark.sql.functions`` and
friends build Connect expressions, which a classic session (the test suite's ``spark`` fixture) cannot
use. So the remote parts run here, in a child process started by the test, with ``SPARK_REMOTE`` set to
the test's server; the session comes from ``get_or_create_session()`` as a job's or notebook's would.

    SPARK_REMOTE=sc://127.0.0.1:PORT python tests/connect_client.py TASK ARGS...

Tasks (each prints one line ``RESULT <json>`` and writes the links it got as a Parquet file):

* ``link CONFIG_JSON DATA OUT LINKS``: ``Linker(...).link`` of DATA/{left,right,seeds}.parquet into OUT;
* ``model CONFIG_JSON DATA OUT LINKS``: a model fitted in process on DATA/{left,right,seeds}.parquet,
  saved and loaded through the remote session, links DATA/new.parquet on the server;
* ``notebook NOTEBOOK LINKS``: runs the notebook as a script (its inputs and output from ``VECLINK_*``);
* ``store OUT``: the run store's Delta checks, writes and crash clean-up (no links; RESULT tells what
  it saw).
"""

from __future__ import annotations

import json
import logging
import runpy
import sys
from pathlib import Path
from typing import Any


def _links(df: Any, path: str) -> int:
    pdf = df.toPandas()
    pdf.attrs = {}  # Connect's toPandas puts the query's metrics there, which to_parquet cannot store
    pdf.to_parquet(path)
    return len(pdf)


def _fit_save_load_link(spark: Any, config: str, data: Path, output: Path) -> Any:
    """Fit a model in process (``fit_arrays``), save it through the remote session, load it back
    through it and link the held-back rows with it on the server (``model_spark.link_new``)."""
    import numpy as np
    import pandas as pd

    from veclink_spark import LinkConfig
    from veclink_spark.arrays import fit_arrays
    from veclink_spark.model_spark import link_new, load_model, save_model

    def table(name: str) -> tuple[np.ndarray, np.ndarray]:
        pdf = pd.read_parquet(data / name)
        return pdf["id"].to_numpy(), np.stack(pdf["vector"].to_numpy())

    seeds = pd.read_parquet(data / "seeds.parquet")
    (left_ids, left), (right_ids, right) = table("left.parquet"), table("right.parquet")
    fitted = fit_arrays(
        left_ids,
        left,
        right_ids,
        right,
        seeds["left_id"].to_numpy(),
        seeds["right_id"].to_numpy(),
        LinkConfig.from_dict(json.loads(config)),
    )
    fitted.info.pop("summary")
    fitted.links = spark.createDataFrame(fitted.links)  # saved with the model, as a run's are
    save_model(fitted, str(output / "model"), spark)
    model = load_model(str(output / "model"), spark)
    return link_new(
        model,
        str(data / "new.parquet"),
        str(output / "new"),
        run_id="n1",
        against=str(data / "right.parquet"),
        existing=str(data / "left.parquet"),
    )


def _store_checks(spark: Any, output: str) -> dict[str, Any]:
    """What RunStore does through Connect where it used Delta's DeltaTable (existence, clean-up), and
    an input read that fails at analysis (lazy on Connect) reported as an InputError."""
    from veclink_spark.errors import InputError, StoreError
    from veclink_spark.inputs import _load
    from veclink_spark.store import RunStore

    store = RunStore(spark, output)
    seen: dict[str, Any] = {"exists_before": store.exists("anchors")}
    rows = spark.createDataFrame([(1, 10, 1.0)], "left_id long, right_id long, score double")
    store.write_round("anchors", rows, "crashed", 1)  # a round that crashed before its commit
    spark.range(3).write.parquet(store.path("plain"))
    store.discard_uncommitted("crashed", ["anchors", "not_written_yet"])
    kept = store.read_rounds("anchors", "crashed").select("round").collect()
    seen["rounds_left"] = sorted(r[0] for r in kept)
    seen["last_committed"] = store.last_committed_round("crashed")
    seen["exists"] = {t: store.exists(t) for t in ("anchors", "rounds", "plain", "missing")}
    for name, call in (
        ("bad_scheme", lambda: RunStore(spark, "nosuchscheme://bucket/out").exists("anchors")),
        ("missing_table", lambda: store.read_run("links", "crashed")),
        ("missing_input", lambda: _load(spark, "parquet", output + "/no-such-input", "left")),
    ):
        try:
            call()
            seen[name] = "no error"
        except (StoreError, InputError) as exc:
            seen[name] = f"{type(exc).__name__}: {exc}"
    return seen


def main(argv: list[str]) -> dict[str, Any]:
    from veclink_spark import LinkConfig, Linker
    from veclink_spark.session import get_or_create_session, is_connect

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    spark = get_or_create_session()
    if not is_connect(spark):
        raise SystemExit(f"expected a Spark Connect session (SPARK_REMOTE), got {type(spark)}")
    task, args = argv[0], argv[1:]
    out: dict[str, Any] = {"session": f"{type(spark).__module__}.{type(spark).__name__}"}
    if task == "link":
        config, data, output, links = args
        d = Path(data)
        result = Linker(LinkConfig.from_dict(json.loads(config)), spark).link(
            str(d / "left.parquet"), str(d / "right.parquet"), str(d / "seeds.parquet"), output, "remote"
        )
        out["summary"] = result.summary
        out["rows"] = _links(result.links, links)
    elif task == "model":
        config, data, output, links = args
        found = _fit_save_load_link(spark, config, Path(data), Path(output))
        out["summary"] = found.summary
        out["rows"] = _links(found.links, links)
        # The merged index through the remote session, from the loaded model (model_spark.merge).
        from veclink_spark.model_spark import load_model, merge

        model = load_model(str(Path(output) / "model"), spark)
        d = Path(data)
        merged = merge(model, str(d / "left.parquet"), str(d / "right.parquet"), str(Path(output) / "m"))
        out["merged_rows"] = _links(merged, links.replace(".parquet", "-merged.parquet"))
    elif task == "notebook":
        notebook, links = args
        ns = runpy.run_path(notebook, run_name="__main__")
        out["summary"] = ns["summary"]
        out["rows"] = _links(ns["links"], links)
        out["notebook_session"] = f"{type(ns['spark']).__module__}.{type(ns['spark']).__name__}"
    elif task == "store":
        out.update(_store_checks(spark, args[0]))
    else:
        raise SystemExit(f"unknown task {task!r}")
    spark.stop()
    return out


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1:]), default=str), flush=True)
