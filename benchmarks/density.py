"""Dense, clustered synthetic pairs against their ceiling (issue 30, "at the ceiling at every size").

A pair of :func:`veclink_spark.synthetic.write_scale_pair` with many clusters (default 300), seeds drawn
from anywhere or from a few clusters only (``--seed-clusters``), linked in process with the defaults
(``link_arrays``) or with config overrides (``--set section.field=value``); scored against the truth
and against the ceiling (:mod:`benchmarks.harness.ceiling`, whole tables in memory: up to about 30,000
rows a side; beyond, exact faiss searches; beyond 300,000, searches within k-means cells, audited).
``--engine spark`` runs ``jobs/link.py`` as a user would (defaults, local[*]; its work folder beside
the data) instead of ``link_arrays``: the in-process engine holds both tables and more on the driver,
too much at 200,000 rows a side. Data is cached under ``~/.cache/veclink-spark/density/``.

    python benchmarks/density.py run --rows 20000 [--seed-clusters 3] [--set scale.fit_rows=20000]
    python benchmarks/density.py run --rows 200000 --engine spark   # jobs/link.py, defaults, local[*]
    python benchmarks/density.py run --rows 1000000 --engine spark --seed-clusters 3
    python benchmarks/density.py report      # writes benchmarks/density/REPORT.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.grid import code_version  # noqa: E402
from benchmarks.harness.ceiling import ceiling  # noqa: E402
from benchmarks.harness.runner import config_overrides  # noqa: E402
from veclink_spark.arrays import link_arrays  # noqa: E402
from veclink_spark.config import LinkConfig  # noqa: E402
from veclink_spark.evaluate import score_links  # noqa: E402
from veclink_spark.synthetic import write_scale_pair  # noqa: E402

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "veclink-spark" / "density"
OUT = ROOT / "benchmarks" / "density"


def _table(folder: Path, side: str) -> tuple[np.ndarray, np.ndarray]:
    t = pq.read_table(folder / side)
    ids = t.column("id").to_numpy()
    vectors = t.column("vector").combine_chunks()  # one flat buffer, not a million row arrays (memory)
    vec = np.asarray(vectors.flatten().to_numpy(), np.float32).reshape(len(t), -1)
    return ids, vec


def data(rows: int, clusters: int, seed_clusters: int, seed: int = 0) -> Path:
    folder = CACHE / f"r{rows}-c{clusters}-s{seed_clusters}-{seed}"
    if not (folder / "seeds.parquet").exists():
        info = write_scale_pair(str(folder), rows, clusters=clusters, seed=seed, seed_clusters=seed_clusters)
        print(f"wrote {folder.name}: {info}", flush=True)
    return folder


def _spark(folder: Path, reuse: bool) -> tuple[pd.DataFrame, dict, float]:
    """``jobs/link.py`` on the pair (scale benchmark's command, run id ``scale``): (links, summary, s).
    ``reuse``: the last run's links and summary, where it ended (to score it again, or when the scoring
    or the ceiling failed after the job)."""
    from benchmarks.scale import _dump_links, _run, _spark_command

    out = folder / "spark-run"
    if reuse and (folder / "spark-links.parquet").exists() and (out / "summary.json").exists():
        summary = json.loads((out / "summary.json").read_text())
        return pd.read_parquet(folder / "spark-links.parquet"), summary, float(summary["seconds"])
    shutil.rmtree(out, ignore_errors=True)
    code, seconds, _ = _run(_spark_command(folder, out), folder / "spark-run.log")
    if code != 0:
        raise SystemExit(f"jobs/link.py exited {code}: see {folder / 'spark-run.log'}")
    _dump_links(out, folder / "spark-links.parquet")
    summary = json.loads((out / "summary.json").read_text())
    return pd.read_parquet(folder / "spark-links.parquet"), summary, seconds


def run(args: argparse.Namespace) -> int:
    folder = data(args.rows, args.clusters, args.seed_clusters)
    seeds = pq.read_table(folder / "seeds.parquet").to_pandas()
    truth = pq.read_table(folder / "truth.parquet").to_pandas()
    overrides = config_overrides(args.set)
    if args.engine == "spark":
        if overrides:
            raise SystemExit("--set applies to the in-process engine only")
        links, summary, seconds = _spark(folder, args.reuse)  # before the tables are read here: memory
    li, lv = _table(folder, "left")
    ri, rv = _table(folder, "right")
    if args.engine != "spark":
        cfg = LinkConfig.from_dict(overrides)
        t0 = time.time()
        links, summary = link_arrays(
            li, lv, ri, rv, seeds["left_id"].to_numpy(), seeds["right_id"].to_numpy(), cfg
        )
        seconds = time.time() - t0
    got = score_links(links, truth, seeds)  # seed pairs excluded
    p, r = got["precision"], got["recall"]
    rec = {
        "rows": args.rows,
        "clusters": args.clusters,
        "seeds": f"{args.seed_clusters} clusters" if args.seed_clusters else "anywhere",
        "overrides": overrides,
        "engine": args.engine,
        "code": code_version(),  # the commit measured
        "seconds": round(seconds, 1),
        "links": got["n_links"],
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(got["f1"], 4),
        "estimated_precision": summary.get("estimated_precision"),
        "verdict": summary.get("verdict"),
        "final_matching": summary.get("final_matching") is not None,
    }
    if args.ceiling:
        lpos = {k: i for i, k in enumerate(li.tolist())}
        rpos = {k: i for i, k in enumerate(ri.tolist())}
        tl = np.array([lpos[a] for a in truth["left_id"]])
        tr = np.array([rpos[b] for b in truth["right_id"]])
        c = ceiling(lv, rv, tl, tr)
        rec["ceiling_f1"] = round(c["f1"], 4)
        rec["ceiling_p"] = round(c["precision"], 4)
        rec["ceiling_r"] = round(c["recall"], 4)
        rec["ceiling_search"] = c["search"]
    print(json.dumps(rec), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "results.jsonl", "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    return 0


def report(args: argparse.Namespace) -> int:
    rows = [json.loads(line) for line in open(OUT / "results.jsonl")]
    ceilings = {(r["rows"], r["clusters"], r["seeds"]): r["ceiling_f1"] for r in rows if "ceiling_f1" in r}
    lines = [
        "# Dense, clustered synthetic pairs against their ceiling",
        "",
        "Made by `python benchmarks/density.py run ...` (one line per run, in process or, with "
        "`--engine spark`, by `jobs/link.py`) and `python benchmarks/density.py report`. Pairs of "
        "`veclink_spark.synthetic.write_scale_pair` "
        "(768-d left, 384-d right, alpha 0.3, 15 seeds), with `clusters` latent clusters; seeds from "
        "anywhere or from a few clusters only. Ceiling: benchmarks/harness/ceiling.py (an orthogonal map "
        "fitted on half of the true pairs, CSLS mutual nearest neighbours, the best cut chosen with the "
        "truth).",
        "",
        "| rows a side | clusters | seeds | overrides | P | R | F1 | est. P | ceiling F1 | gap | s | code |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ceil = ceilings.get((r["rows"], r["clusters"], r["seeds"]))
        gap = "-" if ceil is None else f"{ceil - r['f1']:+.3f}"
        over = json.dumps(r["overrides"]) if r["overrides"] else "defaults"
        if r.get("engine") == "spark":
            over = "jobs/link.py"
        lines.append(
            f"| {r['rows']:,} | {r['clusters']} | {r['seeds']} | {over} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['f1']:.3f} | {r['estimated_precision']} | "
            f"{'-' if ceil is None else f'{ceil:.3f}'} | {gap} | {r['seconds']:.0f} | {r['code']} |"
        )
    approximate = sorted(
        {(r["rows"], r["ceiling_search"]) for r in rows if r.get("ceiling_search", "exact") != "exact"}
    )
    if approximate:
        lines += [
            "",
            "Ceilings whose CSLS searches were approximate (an exact search is out of reach there):",
            "",
        ]
        lines += [f"- {n:,} rows a side: {how}" for n, how in approximate]
    (OUT / "REPORT.md").write_text("\n".join(lines) + "\n")
    print((OUT / "REPORT.md").read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=["run", "report"])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--clusters", type=int, default=300)
    ap.add_argument("--seed-clusters", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="config override, section.field=value")
    ap.add_argument("--engine", choices=["inprocess", "spark"], default="inprocess")
    ap.add_argument("--no-ceiling", dest="ceiling", action="store_false")
    ap.add_argument("--reuse", action="store_true", help="--engine spark: score the last run again")
    args = ap.parse_args(argv)
    return {"run": run, "report": report}[args.step](args)


if __name__ == "__main__":
    raise SystemExit(main())
