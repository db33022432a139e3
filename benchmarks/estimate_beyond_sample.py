"""The estimated precision of a run larger than its fit sample: inside the sample and outside it.

On a dense synthetic pair of ``benchmarks/density.py`` (default: 20,000 rows a side, 300 clusters), the
run is made in process with the defaults (cached under ``~/.cache/veclink-spark/density/``), then its
links are split by whether both rows lie in the fit sample. For each part: the estimate of
``veclink_spark.trust.link_precision`` against the measured precision; and for the links outside,
three ways of giving them an lfdr:

- ``sample``: the product's: CSLS with each row's neighbourhood measured in the fit sample;
- ``cosine``: the lfdr of the inside links as an isotonic function of the link's cosine under the map;
- ``full``: the same function of the CSLS score with neighbourhoods measured in the whole tables.

    python benchmarks/estimate_beyond_sample.py [--rows 20000] [--clusters 300]
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.density import _table, data  # noqa: E402
from veclink_spark.config import LinkConfig  # noqa: E402
from veclink_spark.fit import fit_and_extend  # noqa: E402
from veclink_spark.kernels import csls_score  # noqa: E402
from veclink_spark.precision import CSLS_K, _top_mean, estimate_precision  # noqa: E402
from veclink_spark.reference import NumpyBackend  # noqa: E402
from veclink_spark.trust import fit_rows  # noqa: E402


def _r(a: np.ndarray, table_t: np.ndarray) -> np.ndarray:
    """Each row's CSLS neighbourhood mean against a whole table (given transposed), in batches."""
    return np.concatenate([_top_mean(a[i : i + 2000] @ table_t, CSLS_K) for i in range(0, len(a), 2000)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--clusters", type=int, default=300)
    args = ap.parse_args(argv)
    folder = data(args.rows, args.clusters, 0)
    li, lv = _table(folder, "left")
    ri, rv = _table(folder, "right")
    import pyarrow.parquet as pq

    seeds = pq.read_table(folder / "seeds.parquet").to_pandas()
    truth = pq.read_table(folder / "truth.parquet").to_pandas()
    partner = dict(zip(truth["left_id"].tolist(), truth["right_id"].tolist(), strict=True))
    cfg = LinkConfig()
    backend = NumpyBackend(li, lv, ri, rv, cfg)
    cached = folder / "run-defaults.pkl"
    if cached.exists():
        anchors = pickle.loads(cached.read_bytes())
    else:
        sl, sr = seeds["left_id"].to_numpy(), seeds["right_id"].to_numpy()
        anchors = fit_and_extend(backend, sl, sr, cfg).anchors
        cached.write_bytes(pickle.dumps(anchors))
    is_seed = np.asarray(anchors["is_seed"], bool)
    rows = fit_rows(backend, anchors["left_id"][is_seed], anchors["right_id"][is_seed], cfg.scale.fit_rows)
    pairs = zip(anchors["left_id"].tolist(), anchors["right_id"].tolist(), strict=True)
    ok = np.array([partner.get(a) == b for a, b in pairs])
    pl, pr = rows.positions(anchors["left_id"], anchors["right_id"])
    inside = (pl >= 0) & (pr >= 0)
    ins, out = inside & ~is_seed, ~inside & ~is_seed
    # the product's estimate (veclink_spark.trust.link_precision, without its chunking): made on the
    # sample's links, the links outside scored against the sample by its Scorer
    est, scorer = estimate_precision(rows.left, rows.right, pl[inside], pr[inside], is_seed[inside])
    xa, yb = backend.anchor_vectors(anchors["left_id"], anchors["right_id"])
    lfdr, score = np.full(len(ok), np.nan), np.full(len(ok), np.nan)
    lfdr[inside], score[inside] = est.lfdr, est.score
    score[out], lfdr[out] = scorer(xa[out], yb[out])
    for name, m in (("inside the sample", ins), ("outside", out), ("all", ~is_seed)):
        got, want = 1 - lfdr[m].mean(), ok[m].mean()
        print(f"{name}: {int(m.sum())} links, estimated {got:.3f}, measured {want:.3f}")
    # the outside links given an lfdr two other ways
    a, b = np.asarray(xa, np.float64) @ scorer.w, np.asarray(yb, np.float64)
    cos = np.einsum("ij,ij->i", a, b)
    mapped_left = np.asarray(backend.left, np.float64) @ scorer.w
    full = csls_score(cos, _r(a, np.asarray(backend.right, np.float64).T), _r(b, mapped_left.T))
    lf_in = lfdr[ins]
    iso = IsotonicRegression(increasing=False, out_of_bounds="clip", y_min=0.0, y_max=1.0)
    print(f"outside: mean score in the sample {score[out].mean():.3f}, whole tables {full[out].mean():.3f}")
    print(f"inside: mean score in the sample {score[ins].mean():.3f}, whole tables {full[ins].mean():.3f}")
    for name, x in (("cosine", cos), ("full", full)):
        lf = iso.fit(x[ins], lf_in).predict(x[out])
        allf = np.concatenate([lf_in, lf])
        print(f"outside by {name}: estimated {1 - lf.mean():.3f} (all links {1 - allf.mean():.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
