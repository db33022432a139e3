#!/usr/bin/env python
"""How far the estimated precision of rows linked after a run can be trusted.

    python benchmarks/new_rows.py [--data-dir ../shared/data] [--out benchmarks/new_rows]
        [--cells CORPUS/LEFT/RIGHT/ALPHA | density/ROWS ...] [--cache DIR] [--report-only]

Per cell (a benchmark split, ``design/benchmark.md``: 15 in-domain seeds, split seed 0, fresh ids),
with the in-process engine and the default configuration: the model is fitted on two thirds of the
left table (the seeds among them) and the whole right table (:func:`veclink_spark.arrays.fit_arrays`);
the other third arrives later and is linked with the model (:meth:`LinkModel.link_arrays`, the fitted
rows competing), in two batches:

- **like the fitted rows**: the whole third (as many with a partner as the fitted rows have);
- **few with a partner**: the third's rows without partner, and as many of its rows with one as make
  them a tenth of the batch (a batch from elsewhere, say).

Each batch's new links: measured precision against the truth beside ``estimated_precision`` (the
new links' own estimate, :func:`veclink_spark.trust.assess_new_links`) and the fitted run's own
estimate (what the new links were trusted at when they took the run's word); the links kept at
``min_precision`` 0.9 and 0.95 (their measured precision). The ceiling of ``design/benchmark.md``
(:mod:`benchmarks.harness.ceiling`) is given beside each cell. Cell ``density/ROWS``: the clustered
synthetic pair of ``benchmarks/density.py`` with ROWS rows a side, larger than ``scale.fit_rows``, so
that the new rows are estimated in regions. Ground truth lives in this script only.
Writes ``OUT/results.jsonl`` (one row per cell and batch) and ``OUT/REPORT.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks.grid import code_version  # noqa: E402
from benchmarks.harness.ceiling import ceiling  # noqa: E402
from veclink_spark.arrays import fit_arrays  # noqa: E402
from veclink_spark.splits import load_corpus, make_split  # noqa: E402

log = logging.getLogger("veclink.new_rows")

SHORT = {
    "all-mpnet-base-v2": "mpnet",
    "all-MiniLM-L6-v2": "L6",
    "multilingual-e5-small": "e5",
    "all-MiniLM-L3-v2-paraphrase": "L3",
}
LONG = {v: k for k, v in SHORT.items()}
CELLS = [
    "debian/L6/L3/0.3",
    "debian/mpnet/e5/0.3",
    "debian/L6/e5/0.15",
    "wordnet/L6/L3/0.3",
    "wordnet/mpnet/e5/0.3",
    "density/20000",
]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "veclink-spark" / "new_rows"
#: The share of the second batch's rows that have a partner.
FEW = 0.1


def measured(links: Any, truth: set, floor: float = 0.0) -> dict[str, Any]:
    """Links (at ``precision_estimate`` >= ``floor``) and their precision against the truth."""
    kept = links[links["precision_estimate"] >= floor] if floor > 0 else links
    pairs = list(zip(kept.left_id.tolist(), kept.right_id.tolist(), strict=True))
    right = sum(p in truth for p in pairs)
    return {"links": len(pairs), "precision": round(right / len(pairs), 4) if pairs else None}


def _split(args: argparse.Namespace, cell: str) -> Any:
    """The cell's split: a benchmark split of real data, or (``density/ROWS``) the clustered synthetic
    pair of ``benchmarks/density.py`` (300 clusters; tables larger than ``scale.fit_rows``, so the new
    rows are estimated in regions)."""
    if cell.startswith("density/"):
        from benchmarks.density import _table, data

        folder = data(int(cell.split("/")[1]), 300, 0)
        tables = [
            SimpleNamespace(**dict(zip(("ids", "vectors"), _table(folder, s), strict=True)))
            for s in ("left", "right")
        ]
        truth = pd.read_parquet(folder / "truth.parquet").iloc[:, :2].to_numpy()
        seeds = pd.read_parquet(folder / "seeds.parquet")[["left_id", "right_id"]].to_numpy()
        return SimpleNamespace(left=tables[0], right=tables[1], truth=truth, seeds=seeds)
    corpus, left, right, alpha = cell.split("/")
    e1 = load_corpus(args.data_dir, corpus, LONG[left])
    e2 = load_corpus(args.data_dir, corpus, LONG[right])
    return make_split(e1, e2, float(alpha), 15, args.seed)


def run_cell(args: argparse.Namespace, cell: str) -> list[dict[str, Any]]:
    split = _split(args, cell)
    L, R = split.left, split.right
    truth = set(zip(split.truth[:, 0].tolist(), split.truth[:, 1].tolist(), strict=True))
    partnered = set(split.truth[:, 0].tolist())
    seeds = set(split.seeds[:, 0].tolist())
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(L.ids))
    order = np.concatenate(
        [[i for i in order if L.ids[i] in seeds], [i for i in order if L.ids[i] not in seeds]]
    )
    n_fit = int(round(len(L.ids) * 2 / 3))
    fit_i, later = np.sort(order[:n_fit]), np.sort(order[n_fit:])
    cached = Path(args.cache) / f"{cell.replace('/', '_')}_seed{args.seed}.pkl"
    if cached.is_file():  # the fit does not change with the new-rows code this measures
        model, fit_s = pickle.loads(cached.read_bytes())
    else:
        t0 = time.time()
        model = fit_arrays(
            L.ids[fit_i], L.vectors[fit_i], R.ids, R.vectors, split.seeds[:, 0], split.seeds[:, 1]
        )
        fit_s = round(time.time() - t0, 1)
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(pickle.dumps((model, fit_s)))
    fitted = model.links[~model.links["is_seed"]]
    fitted_p = measured(fitted.assign(precision_estimate=1.0), truth)["precision"]
    with_partner = np.array([L.ids[i] in partnered for i in later])
    keep_with = int(round(FEW / (1 - FEW) * int((~with_partner).sum())))
    few = np.sort(np.concatenate([later[~with_partner], rng.permutation(later[with_partner])[:keep_with]]))
    lpos = {k: i for i, k in enumerate(L.ids.tolist())}
    rpos = {k: i for i, k in enumerate(R.ids.tolist())}
    ceil = ceiling(
        L.vectors,
        R.vectors,
        np.array([lpos[a] for a, _ in split.truth.tolist()]),
        np.array([rpos[b] for _, b in split.truth.tolist()]),
    )
    rows = []
    fitted_rows = {"existing_ids": L.ids[fit_i], "existing": L.vectors[fit_i]}  # they compete
    for batch, new_i in (("like the fitted rows", later), ("few with a partner", few)):
        t0 = time.time()
        links, summary = model.link_arrays(L.ids[new_i], L.vectors[new_i], R.ids, R.vectors, **fitted_rows)
        row = {
            "cell": cell,
            "batch": batch,
            "fitted_rows": int(len(fit_i)),
            "new_rows": int(len(new_i)),
            "new_rows_with_partner": int(sum(L.ids[i] in partnered for i in new_i)),
            "fit_seconds": fit_s,
            "new_rows_seconds": round(time.time() - t0, 1),
            "fitted_run": {
                "links": len(fitted),
                "precision": fitted_p,
                "estimated_precision": model.info["summary"].get("estimated_precision"),
                "verdict": model.info.get("verdict"),
            },
            "new_links": measured(links, truth),
            "estimated_precision": summary["estimated_precision"],
            "estimate_is_lower_bound": summary["estimate_is_lower_bound"],
            "precision_basis": summary["precision_basis"]["rows"],
            "at_0.9": measured(links, truth, 0.9),
            "at_0.95": measured(links, truth, 0.95),
            "ceiling": {k: ceil[k] for k in ("f1", "precision", "recall", "recall_at_p95")},
            "code": code_version(),
        }
        log.info("%s", row)
        rows.append(row)
    return rows


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def report(rows: list[dict[str, Any]], out: Path) -> str:
    lines = [
        "# Rows linked after a run: estimated against measured precision",
        "",
        "Command: `python benchmarks/new_rows.py --data-dir ../shared/data`. Written by "
        "`benchmarks/new_rows.py` from `results.jsonl`; in-process engine, default configuration, 15 "
        "in-domain seeds, split seed 0. The model is fitted on two thirds of the left table; the other "
        "third arrives later, whole (*like the fitted rows*) or as its rows without partner plus a tenth "
        "with one (*few with a partner*). `run est`: the fitted run's estimate over its own links, "
        "what the new links were trusted at before they had their own. Ceiling: "
        "`design/benchmark.md` (an orthogonal map on half the true pairs, best cut).",
        "",
        "| cell | batch | new rows (with partner) | new links | P | est | run est | at 0.9: n / P "
        "| at 0.95: n / P | ceiling F1 (R at P 0.95) | s |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|---:|",
    ]
    for r in rows:
        c = r["ceiling"]
        lines.append(
            f"| {r['cell']} | {r['batch']} | {r['new_rows']} ({r['new_rows_with_partner']}) "
            f"| {r['new_links']['links']} | {_f(r['new_links']['precision'])} "
            f"| {_f(r['estimated_precision'])}"
            f"{' (floor)' if r['estimate_is_lower_bound'] else ''} "
            f"| {_f(r['fitted_run']['estimated_precision'])} "
            f"| {r['at_0.9']['links']} / {_f(r['at_0.9']['precision'])} "
            f"| {r['at_0.95']['links']} / {_f(r['at_0.95']['precision'])} "
            f"| {c['f1']:.3f} ({_f(c.get('recall_at_p95'))}) | {r['new_rows_seconds']} |"
        )
    text = "\n".join(lines) + "\n"
    (out / "REPORT.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "new_rows"))
    p.add_argument("--cells", nargs="+", default=CELLS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cache",
        default=str(CACHE),
        help="fitted models, one per cell (outside the repository); delete it after a change to the fit",
    )
    p.add_argument("--report-only", action="store_true", help="REPORT.md from results.jsonl only")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    if not args.report_only:
        if not Path(args.data_dir).is_dir():
            print(f"no data at {args.data_dir}; pass --data-dir", file=sys.stderr)
            return 2
        done = {(r["cell"], r["batch"]) for r in _read(results)}
        for cell in args.cells:
            if all((cell, b) in done for b in ("like the fitted rows", "few with a partner")):
                continue
            with results.open("a") as f:
                for row in run_cell(args, cell):
                    f.write(json.dumps(row) + "\n")
    print(report(_read(results), out))
    return 0


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []


if __name__ == "__main__":
    sys.exit(main())
