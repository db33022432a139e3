"""Cost of the published loop's hash-join stage over whole tables on Spark.

A run fits on a bounded sample (veclink_spark.fit; its rounds run on executors with ``scale.fit_on:
executors``, as here), so in a run the loop's Spark stage meets a table only as large as the fit sample.
This benchmark runs it over the full tables, to measure what it costs at scale: the rounds of a fit on
executors whose sample is the whole table (:func:`veclink_spark.engine.run_rounds` on the
:class:`veclink_spark.backends.spark.SparkBackend` the fit uses, without the sample, duplicate and seed
checks, which would bring a million rows to the driver), the published loop alone (``refine.mode:
none``), with the seeds as anchors: each round computes the views' anchor-distance signatures and hash
keys on executors (Arrow UDFs), equi-joins the two tables on the keys, finds the mutual best matches in
each block, reduces the Beta-Bernoulli votes per pair and commits the round (Delta).

    python benchmarks/hash_join.py --rows 100000 1000000 [--rounds 2] [--views 48] [--cache DIR]

``--views`` sets the first round's views (``views.base_views``, default 48 as in a run): a round's
block searches are independent per view, so a round of fewer views measures the cost per view at a
size where a whole round would take hours.

Same synthetic pairs and cache as benchmarks/scale.py (generated once per size, outside the
repository). Each size runs in a subprocess; peak memory is its process tree's largest summed resident set
(and, beside it, proportional set: ``benchmarks/scale.py``).
Results are appended to ``benchmarks/scale/hash_join.jsonl``; ``benchmarks/scale/HASH_JOIN.md`` is
rewritten from all of them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "scale"
sys.path.insert(0, str(ROOT))

from benchmarks.grid import code_version  # noqa: E402
from benchmarks.scale import _data, _run  # noqa: E402


def _child(folder: Path, work: Path, rounds: int, views: int, result: Path) -> None:
    """One size: read and centre the tables, then ``rounds`` rounds of the loop on the Spark backend."""
    import logging

    import numpy as np
    import pyarrow.parquet as pq

    from veclink_spark import LinkConfig
    from veclink_spark.backends.spark import SparkBackend
    from veclink_spark.engine import run_rounds
    from veclink_spark.inputs import InputColumns, load_inputs
    from veclink_spark.linker import centred_frame
    from veclink_spark.session import get_or_create_session
    from veclink_spark.store import RunStore

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    advanced = {
        "refine": {"mode": "none"},
        "bootstrap": {"max_rounds": rounds},
        "views": {"base_views": views},
    }
    cfg = LinkConfig.from_dict({"advanced": advanced})
    spark = get_or_create_session()
    t0 = time.time()
    cols = InputColumns("id", "vector", "id", "vector", "left_id", "right_id")
    inputs = load_inputs(
        spark, str(folder / "left"), str(folder / "right"), str(folder / "seeds.parquet"), cols
    )
    s = inputs.summary
    left, _ = centred_frame(inputs.left, s.mean_left, "left")
    right, _ = centred_frame(inputs.right, s.mean_right, "right")
    left, right = left.persist(), right.persist()
    left.count(), right.count()
    prepared = time.time() - t0
    seeds = pq.read_table(folder / "seeds.parquet").to_pandas()
    backend = SparkBackend(
        spark,
        left,
        right,
        RunStore(spark, str(work)),
        "hash-join",
        cfg,
        s.n_left,
        s.n_right,
        s.dim_left,
        s.dim_right,
    )
    t1 = time.time()
    res = run_rounds(backend, seeds["left_id"].to_numpy(), seeds["right_id"].to_numpy(), cfg)
    loop = time.time() - t1
    hist = res.state.history
    out = {
        "rows_left": s.n_left,
        "rows_right": s.n_right,
        "prepare_seconds": round(prepared, 1),
        "loop_seconds": round(loop, 1),
        "rounds": [
            {
                "round": h["round"],
                "anchors": h["anchors_before"],
                "views": h["views"],
                "candidates": h["candidates"],
                "promoted": h["promoted"],
                "blocks": h.get("blocks"),
                "max_block": h.get("max_block"),
                "mean_block": h.get("mean_block"),
                "seconds": h["seconds"],
            }
            for h in hist
        ],
        "links": int((~np.asarray(res.anchors["is_seed"])).sum()),
    }
    result.write_text(json.dumps(out) + "\n")


def run_size(folder: Path, rows: int, rounds: int, views: int, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    result = work / "result.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(folder),
        str(work),
        str(rounds),
        str(views),
        str(result),
    ]
    code, seconds, peaks = _run(cmd, work / "log.txt")
    row = {
        "rows": rows,
        "exit": code,
        "seconds": round(seconds, 1),
        **peaks.record(),
        "code": code_version(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if code == 0:
        row.update(json.loads(result.read_text()))
    print(json.dumps(row), flush=True)
    return row


def report(results: list[dict]) -> str:
    lines = [
        "# The published loop's hash-join stage over whole tables (Spark)",
        "",
        "Command: `python benchmarks/hash_join.py --rows ...` (see the script's doc). Synthetic pairs of",
        "benchmarks/scale.py (768-d left, 384-d right, alpha 0.3, 15 seeds), the loop alone on the Spark",
        "backend (local[*], 2 cores), the seeds as anchors. Seconds: the whole child process (session,",
        "reading, centring, rounds); per round: signatures + hash keys, the equi-join, mutual best matches,",
        "vote reduction, the round's Delta writes and commit.",
        "",
        "Max block: the largest (view, key) block, rows of its larger side. A row's keys are its 2",
        "nearest view anchors; with 15 seeds a view has about ten anchors, so both tables meet in about",
        "six blocks per view, each holding about a third of the table: the block search grows with the",
        "square of the rows until `backends.base.MAX_BLOCK_SIZE` (50,000) caps a block (the rows",
        "nearest its anchor are kept, the others compared with nothing in that view). Seconds per view",
        "include the round's fixed cost (the votes' Delta write, candidates, the commit; about 15 s at",
        "10,000 rows: 48 views took 69.1 s, 4 views 19.0 s). Commit dd908ae, before",
        "`kernels.block_best_matches` searched a block in slices, built each block's whole similarity",
        "matrix, and its Python worker crashed at 100,000 rows (exit 1).",
        "",
        "| rows a side | exit | seconds | peak GiB | prepare s | per round: s (views, blocks, max block, "
        "voted pairs) | commit |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        per = "; ".join(
            f"{x['round']}: {x['seconds']:.1f} "
            f"({x['views']}, {x['blocks']:,}, {x['max_block']:,}, {x['candidates']:,})"
            for x in r.get("rounds", [])
        )
        lines.append(
            f"| {r['rows']:,} | {r['exit']} | {r['seconds']:,.1f} | {r['peak_gib']} "
            f"| {r.get('prepare_seconds', '-')} | {per or '-'} | {r['code']} |"
        )
    ok = [r for r in results if r["exit"] == 0 and r.get("rounds")]
    by_code: dict[str, list[dict]] = {}
    for r in ok:
        by_code.setdefault(r["code"], []).append(r)
    lines.append("")
    for code, rs in by_code.items():
        # Per view of the first round (the seeds as anchors): views are searched independently.
        per_view = {r["rows"]: r["rounds"][0]["seconds"] / max(r["rounds"][0]["views"], 1) for r in rs}
        sizes = sorted(per_view)
        lines.append(
            f"- {code}: first round, seconds per view: "
            + ", ".join(f"{per_view[n]:.2f} at {n:,} rows" for n in sizes)
        )
        for a, b in zip(sizes, sizes[1:], strict=False):
            k = math.log(per_view[b] / per_view[a]) / math.log(b / a)
            lines.append(f"  - time exponent {a:,} -> {b:,} rows: {k:.2f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        _child(Path(argv[1]), Path(argv[2]), int(argv[3]), int(argv[4]), Path(argv[5]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--views", type=int, default=48, help="the first round's views (views.base_views)")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "veclink-spark" / "scale"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    results_path = OUT / "hash_join.jsonl"
    if not args.report_only:
        cache = Path(args.cache)
        for rows in args.rows:
            data = _data(cache, rows, args.seed)
            row = run_size(
                data, rows, args.rounds, args.views, cache / "runs" / f"hash-join-{rows}-{int(time.time())}"
            )
            with open(results_path, "a") as f:
                f.write(json.dumps(row) + "\n")
    results = (
        [json.loads(x) for x in results_path.read_text().splitlines() if x.strip()]
        if results_path.exists()
        else []
    )
    (OUT / "HASH_JOIN.md").write_text(report(results))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
