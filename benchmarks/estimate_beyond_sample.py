"""The estimated precision of a run larger than its fit sample, against the measured.

On a dense synthetic pair of ``benchmarks/density.py`` (default: 20,000 rows a side, 300 clusters), the
run is made in process with the defaults (cached under ``~/.cache/veclink-spark/density/``). Its links
are estimated as the product does (``veclink_spark.trust.estimate_basis`` and ``link_precision``: in
regions around random links, the rest calibrated through their ``similarity``).
Printed for the links estimated in the regions, the others, all of them, and those kept at a minimum
precision of 0.9 and 0.95: the estimate against the measured precision.

``--scale-run ROWS`` estimates instead the links of the Spark job that ``benchmarks/scale.py --rows
ROWS --engines spark`` ran last (its output under ``~/.cache/veclink-spark/scale/runs/``), on its inputs
centred as the job centres them, in a local[*] Spark session.

    python benchmarks/estimate_beyond_sample.py [--rows 20000] [--clusters 300]
    python benchmarks/estimate_beyond_sample.py --scale-run 1000000
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.density import _table, data  # noqa: E402
from veclink_spark.backends.base import Backend  # noqa: E402
from veclink_spark.backends.in_process import NumpyBackend  # noqa: E402
from veclink_spark.config import LinkConfig  # noqa: E402
from veclink_spark.pipeline import fit_and_extend  # noqa: E402
from veclink_spark.trust import estimate_basis, fit_rows, link_precision  # noqa: E402


def _density_run(
    rows: int, clusters: int, cfg: LinkConfig
) -> tuple[Backend, dict[str, np.ndarray], pd.DataFrame]:
    """The in-process backend, the run's links (made once with the defaults, cached) and the truth."""
    folder = data(rows, clusters, 0)
    li, lv = _table(folder, "left")
    ri, rv = _table(folder, "right")
    seeds = pd.read_parquet(folder / "seeds.parquet")
    backend = NumpyBackend(li, lv, ri, rv, cfg)
    cached = folder / "run-defaults.pkl"
    anchors = pickle.loads(cached.read_bytes()) if cached.exists() else {}
    if "similarity" not in anchors:  # none yet, or made before the links kept their scores
        sl, sr = seeds["left_id"].to_numpy(), seeds["right_id"].to_numpy()
        anchors = fit_and_extend(backend, sl, sr, cfg).anchors
        cached.write_bytes(pickle.dumps(anchors))
    return backend, anchors, pd.read_parquet(folder / "truth.parquet")


def _scale_run(rows: int, cfg: LinkConfig) -> tuple[Backend, dict[str, np.ndarray], pd.DataFrame]:
    """A Spark backend over the scale benchmark's inputs of ``rows`` rows a side, centred as the job
    centres them, its last Spark run's links and the truth."""
    from veclink_spark.backends.spark import SparkBackend
    from veclink_spark.inputs import load_inputs
    from veclink_spark.linker import centred_frame
    from veclink_spark.session import get_or_create_session
    from veclink_spark.store import RunStore

    cache = Path.home() / ".cache" / "veclink-spark" / "scale"
    folder = cache / f"synthetic-{rows}-seed0"
    spark = get_or_create_session()
    inputs = load_inputs(spark, str(folder / "left"), str(folder / "right"), str(folder / "seeds.parquet"))
    s = inputs.summary
    left, _ = centred_frame(inputs.left, s.mean_left, "left")
    right, _ = centred_frame(inputs.right, s.mean_right, "right")
    store = RunStore(spark, tempfile.mkdtemp(prefix="veclink-estimate-"))
    backend = SparkBackend(
        spark,
        left.persist(),
        right.persist(),
        store,
        "estimate",
        cfg,
        s.n_left,
        s.n_right,
        s.dim_left,
        s.dim_right,
    )
    links = pd.read_parquet(cache / "runs" / f"spark-{rows}" / "links.parquet")
    keys = ("left_id", "right_id", "round", "is_seed", "votes", "views", "probability", "similarity")
    return backend, {k: links[k].to_numpy() for k in keys}, pd.read_parquet(folder / "truth.parquet")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--clusters", type=int, default=300)
    ap.add_argument("--sample-rows", type=int, default=None, help="the regions' rows (scale.fit_rows)")
    ap.add_argument("--scale-run", type=int, default=None, help="estimate the scale benchmark's Spark run")
    args = ap.parse_args(argv)
    cfg = LinkConfig()
    if args.scale_run:
        backend, anchors, truth = _scale_run(args.scale_run, cfg)
    else:
        backend, anchors, truth = _density_run(args.rows, args.clusters, cfg)
    partner = dict(zip(truth["left_id"].tolist(), truth["right_id"].tolist(), strict=True))
    is_seed = np.asarray(anchors["is_seed"], bool)
    pairs = zip(anchors["left_id"].tolist(), anchors["right_id"].tolist(), strict=True)
    ok = np.array([partner.get(a) == b for a, b in pairs])
    rows = fit_rows(backend, anchors["left_id"][is_seed], anchors["right_id"][is_seed], cfg.scale.fit_rows)
    size = args.sample_rows or cfg.scale.fit_rows
    for basis_name, basis in (("regions", estimate_basis(backend, anchors, rows, size)),):
        est, _ = link_precision(backend, anchors, basis)
        inside = basis.counted(anchors)
        n_l, n_r = len(basis.rows.left_ids), len(basis.rows.right_ids)
        print(f"estimated on the {basis_name}: {n_l} left, {n_r} right rows")
        for name, m in (("estimated there", inside), ("the others", ~inside & ~is_seed), ("all", ~is_seed)):
            got, want = 1 - est.lfdr[m].mean(), ok[m].mean()
            print(f"  {name}: {int(m.sum())} links, estimated {got:.3f}, measured {want:.3f}")
        for floor in (0.9, 0.95):
            kept = ~is_seed & (np.nan_to_num(est.precision, nan=-1.0) >= floor)
            if kept.any():
                got, want = 1 - est.lfdr[kept].mean(), ok[kept].mean()
                print(f"  kept at {floor}: {int(kept.sum())} links, estimated {got:.3f}, measured {want:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
