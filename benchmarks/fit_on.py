"""Where the fit's rounds run (``scale.fit_on``): the same Spark job with the fit on the driver and on
executors, on one synthetic pair; prints each run's phase seconds and whether the links are equal.

    python benchmarks/fit_on.py [--objects 2000] [--work DIR] [--set PATH=VALUE ...]

The pair is :func:`veclink_spark.synthetic.make_pair` (``--objects`` latent objects, alpha 0.3, 15 seeds;
65 % of the objects are rows of each side); both runs use the defaults plus ``--set`` overrides (as in
``conf/default.yaml``: ``scale.fit_rows=500``), on a ``local[2]`` session.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness.runner import config_overrides  # noqa: E402
from veclink_spark import LinkConfig, Linker  # noqa: E402
from veclink_spark.session import get_or_create_session  # noqa: E402
from veclink_spark.synthetic import make_pair  # noqa: E402

#: The rows of a link that must be equal in both runs (probability: to 1e-9).
SAME = ["left_id", "right_id", "is_seed", "round", "votes", "views"]


def _vectors(x: np.ndarray) -> pa.Array:
    flat = pa.array(x.reshape(-1).astype(np.float32))
    return pa.FixedSizeListArray.from_arrays(flat, x.shape[1]).cast(pa.list_(pa.float32()))


def _write_pair(folder: Path, objects: int) -> None:
    pair = make_pair(n_objects=objects, alpha=0.3, n_seeds=15, seed=1)
    pq.write_table(pa.table({"id": pair.left_ids, "vector": _vectors(pair.left)}), folder / "left.parquet")
    pq.write_table(pa.table({"id": pair.right_ids, "vector": _vectors(pair.right)}), folder / "right.parquet")
    seeds = pa.table({"left_id": pair.seed_left, "right_id": pair.seed_right})
    pq.write_table(seeds, folder / "seeds.parquet")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objects", type=int, default=2000)
    p.add_argument("--work", default=None, help="folder for the pair and the runs (default: a temporary one)")
    p.add_argument("--set", nargs="*", default=[], help="PATH=VALUE config overrides")
    args = p.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="fit-on-"))
    work.mkdir(parents=True, exist_ok=True)
    _write_pair(work, args.objects)
    spark = get_or_create_session(
        master="local[2]", conf={"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false"}
    )
    overrides: dict[str, Any] = config_overrides(args.set)
    links = {}
    for where in ("driver", "executors"):
        scale = {**overrides.get("scale", {}), "fit_on": where}
        cfg = LinkConfig.from_dict({**overrides, "scale": scale})
        result = Linker(cfg, spark).link(
            str(work / "left.parquet"),
            str(work / "right.parquet"),
            str(work / "seeds.parquet"),
            str(work / f"out-{where}"),
        )
        pdf: pd.DataFrame = result.links.toPandas()
        links[where] = pdf.sort_values(["left_id", "right_id"], ignore_index=True)
        history = result.summary["history"]
        row = {
            "fit_on": where,
            "objects": args.objects,
            "fit_rounds": len([h for h in history if h["phase"] != "extend"]),
            "links": len(links[where]),
            "phases": {ph["phase"]: ph["seconds"] for ph in result.summary["phases"]},
            "seconds": result.summary["seconds"],
        }
        print(json.dumps(row), flush=True)
    a, b = links["driver"], links["executors"]
    equal = len(a) == len(b) and a[SAME].equals(b[SAME])
    diff = float(np.abs(a["probability"] - b["probability"]).max()) if equal else None
    print(json.dumps({"links_equal": equal, "max_probability_difference": diff}))
    return 0 if equal and diff is not None and diff <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
