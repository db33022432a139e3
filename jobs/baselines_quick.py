"""Run every classical baseline (and a linear-map oracle ceiling) on the real benchmark data.

For each corpus and each pair of encoders, one split by the protocol of design/benchmark.md (alpha,
n seeds, split seed), then each baseline of ``veclink_spark.benchmark.baselines`` fitted on the seeds,
scored seeds excluded. The ORACLE rows fit orthogonal Procrustes / least squares on ALL true shared pairs,
then mutual NN: what a global linear map could reach at best (a ceiling, not a method).

Plain numpy / scikit-learn / faiss, no Spark. Example (from the repository root)::

    python jobs/baselines_quick.py --data-dir ../shared/data --alpha 0.3 --seeds 15 --out baselines.json

Exit code 0 on success, 2 on bad input (missing data folder, unknown encoder or method).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from veclink_spark.benchmark.baselines import BASELINES, Links, oracle_links  # noqa: E402
from veclink_spark.benchmark.evaluate import best_threshold, score_links  # noqa: E402
from veclink_spark.benchmark.splits import Split, load_corpus, make_split  # noqa: E402
from veclink_spark.errors import VeclinkError  # noqa: E402

ENCODERS = ["all-mpnet-base-v2", "all-MiniLM-L6-v2", "multilingual-e5-small", "all-MiniLM-L3-v2-paraphrase"]
CORPORA = ["wordnet", "debian"]
ORACLES = ["procrustes", "procrustes_centred", "least_squares"]
SHORT = {
    "all-mpnet-base-v2": "mpnet",
    "all-MiniLM-L6-v2": "L6",
    "multilingual-e5-small": "e5",
    "all-MiniLM-L3-v2-paraphrase": "L3",
}

log = logging.getLogger("baselines_quick")


def score(split: Split, links: Links) -> dict[str, Any]:
    """Scores of index links against the split's truth, seeds excluded, plus the truth-best score cut."""
    ids = (split.left.ids[links.left_index], split.right.ids[links.right_index])
    truth = {"left_id": split.truth[:, 0], "right_id": split.truth[:, 1], "is_seed": split.truth_is_seed}
    return {
        **score_links(ids, truth, split.seeds),
        "best_threshold": best_threshold((*ids, links.score), truth, split.seeds),
    }


def run_pair(split: Split, methods: list[str], oracle: bool) -> list[dict[str, Any]]:
    """All requested baselines (and oracles) on one split; one result row each."""
    x, y = split.left.vectors, split.right.vectors
    sl, sr = split.seed_index_pairs()
    rows: list[dict[str, Any]] = []
    jobs: list[tuple[str, Callable[[], Links]]] = [(m, partial(BASELINES[m], x, y, sl, sr)) for m in methods]
    if oracle:
        tl, tr = split.truth_index_pairs(include_seeds=True)
        jobs += [(f"ORACLE_{m}", partial(oracle_links, m, x, y, tl, tr, sl, sr)) for m in ORACLES]
    for name, fn in jobs:
        t0 = time.perf_counter()
        links = fn()
        seconds = time.perf_counter() - t0
        row: dict[str, Any] = {"method": name, **score(split, links), "seconds": round(seconds, 2)}
        if links.info:
            row["info"] = links.info
        rows.append(row)
        log.info(
            "  %-22s P=%5.1f R=%5.1f F1=%5.1f links=%5d  %.1fs",
            name,
            100 * row["precision"],
            100 * row["recall"],
            100 * row["f1"],
            row["n_links"],
            seconds,
        )
    return rows


def print_table(results: list[dict[str, Any]], title: str, pick: Callable[[dict[str, Any]], Any]) -> None:
    """One markdown table: a row per (corpus, pair), a P/R/F1 cell per method."""
    methods = list(dict.fromkeys(str(r["method"]) for r in results))
    print(f"\n{title}\n")
    print("| corpus | pair | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for (corpus, e1, e2), group in itertools.groupby(
        results, key=lambda r: (r["corpus"], r["left"], r["right"])
    ):
        cells = {str(r["method"]): pick(r) for r in group}
        text = [
            f"{100 * cells[m]['precision']:.0f}/{100 * cells[m]['recall']:.0f}/{100 * cells[m]['f1']:.1f}"
            if m in cells
            else ""
            for m in methods
        ]
        print(f"| {corpus} | {SHORT.get(str(e1), e1)}/{SHORT.get(str(e2), e2)} | " + " | ".join(text) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir", default="../shared/data", help="real-data folder (default ../shared/data)"
    )
    parser.add_argument("--alpha", type=float, default=0.3, help="shared fraction (default 0.3)")
    parser.add_argument("--seeds", type=int, default=15, help="number of seed pairs (default 15)")
    parser.add_argument("--split-seed", type=int, default=0, help="random seed of the split (default 0)")
    parser.add_argument("--corpora", nargs="+", default=CORPORA, help=f"corpora (default {CORPORA})")
    parser.add_argument("--encoders", nargs="+", default=ENCODERS, help="encoders; every pair is run")
    parser.add_argument(
        "--methods", nargs="*", default=list(BASELINES), help=f"baselines (default all: {list(BASELINES)})"
    )
    parser.add_argument("--no-oracle", action="store_true", help="skip the oracle ceiling rows")
    parser.add_argument(
        "--ood",
        action="store_true",
        help="out-of-domain seeds: drawn from the other corpus (needs both corpora on disk)",
    )
    parser.add_argument("--out", default=None, help="write all results to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    unknown = sorted(set(args.methods) - set(BASELINES))
    if unknown:
        log.error("unknown method(s) %s; choose from %s", unknown, list(BASELINES))
        return 2
    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        log.error("data folder %s not found; pass --data-dir", data_dir)
        return 2

    t_start = time.perf_counter()
    results: list[dict[str, Any]] = []
    try:
        for corpus in args.corpora:
            cache = {e: load_corpus(data_dir, corpus, e) for e in args.encoders}
            other = next(c for c in CORPORA if c != corpus)
            ood_cache = {e: load_corpus(data_dir, other, e) for e in args.encoders} if args.ood else {}
            for e1, e2 in itertools.combinations(args.encoders, 2):
                ood = (ood_cache[e1], ood_cache[e2]) if args.ood else None
                split = make_split(
                    cache[e1], cache[e2], args.alpha, args.seeds, args.split_seed, ood_seed_vectors=ood
                )
                log.info(
                    "%s %s -> %s: left %d, right %d, |S| non-seed %d",
                    corpus,
                    e1,
                    e2,
                    len(split.left),
                    len(split.right),
                    split.n_shared,
                )
                for row in run_pair(split, args.methods, oracle=not args.no_oracle):
                    results.append({"corpus": corpus, "left": e1, "right": e2, **row})
    except VeclinkError as exc:
        log.error("%s", exc)
        return 2
    wall = time.perf_counter() - t_start

    setting = (
        f"alpha={args.alpha}, n={args.seeds}, split seed {args.split_seed}"
        f"{', out-of-domain seeds' if args.ood else ''}; wall {wall:.0f} s"
    )
    print_table(results, f"P / R / F1 (%) of the mutual-NN links, {setting}", lambda r: r)
    print_table(
        results,
        "P / R / F1 (%) after the score threshold that maximises F1 (chosen WITH the truth: a diagnostic)",
        lambda r: r["best_threshold"],
    )
    if args.out:
        payload = {
            "params": {k: v for k, v in vars(args).items() if k != "out"},
            "wall_seconds": round(wall, 1),
            "results": results,
        }
        Path(args.out).write_text(
            json.dumps(payload, indent=1, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
        )
        log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
