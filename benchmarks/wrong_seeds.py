#!/usr/bin/env python
"""Wrong seeds: link a benchmark split whose seeds are partly wrong, and check the run names them.

For each cell (corpus, encoder pair) the split is built by the benchmark protocol
(``veclink_spark.splits.make_split``: alpha, 15 in-domain seeds, fresh ids); then a share of the
seeds (``--wrong``, 0.3 = 5 of 15) gets the right id of another right row (never a seed's, never the
left row's partner). The in-process engine links the split twice, with the right seeds and with the
corrupted ones. The linker sees only the tables and the seeds; the evaluation knows which seeds are
wrong. Each run records P/R/F1 (seeds excluded, veclink_spark/evaluate.py) and the seeds the
run names as probably wrong (``suspect_seeds`` of its summary): how many of the wrong ones, and how
many right ones by mistake.

    python benchmarks/wrong_seeds.py                 # default cells -> benchmarks/wrong_seeds/
    python benchmarks/wrong_seeds.py --report-only   # re-render REPORT.md from results.jsonl

Exit codes: 0 done, 2 bad input (no shared data: nothing written).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness.runner import pair_label  # noqa: E402
from benchmarks.harness.study import study_main  # noqa: E402
from veclink_spark.arrays import link_arrays  # noqa: E402
from veclink_spark.config import LinkConfig  # noqa: E402
from veclink_spark.constants import IS_SEED, LEFT_ID, RIGHT_ID  # noqa: E402
from veclink_spark.evaluate import score_links  # noqa: E402
from veclink_spark.splits import load_corpus, make_split  # noqa: E402

OUT = ROOT / "benchmarks" / "wrong_seeds"
CELLS = [
    "debian:all-mpnet-base-v2:all-MiniLM-L6-v2",
    "debian:all-MiniLM-L6-v2:all-MiniLM-L3-v2-paraphrase",
    "debian:all-mpnet-base-v2:multilingual-e5-small",
    "wordnet:all-mpnet-base-v2:all-MiniLM-L6-v2",
    "debian:all-mpnet-base-v2:all-MiniLM-L6-v2:ood",
]
OOD_SOURCE = {"wordnet": "debian", "debian": "wordnet"}


def corrupt_seeds(seeds: np.ndarray, right_ids: np.ndarray, truth: np.ndarray, share: float, seed: int):
    """(seeds with ``ceil(share * n)`` right ids replaced, bool mask of the replaced ones: at least that
    share). A new right id is drawn from the right rows that are no seed's right id and not the left
    row's true partner."""
    rng = np.random.default_rng([seed, 7])
    n = len(seeds)
    k = math.ceil(share * n - 1e-9)
    wrong = np.zeros(n, dtype=bool)
    wrong[rng.choice(n, size=k, replace=False)] = True
    partner = dict(zip(truth[:, 0].tolist(), truth[:, 1].tolist(), strict=True))
    taken = set(seeds[:, 1].tolist())
    out = seeds.copy()
    for i in np.nonzero(wrong)[0]:
        while True:
            r = int(right_ids[rng.integers(len(right_ids))])
            if r not in taken and r != partner.get(int(seeds[i, 0])):
                break
        taken.add(r)
        out[i, 1] = r
    return out, wrong


def run_cell(
    data_dir: str, cell: str, alpha: float, n_seeds: int, share: float, split_seed: int
) -> list[dict]:
    corpus, left, right, *suffix = cell.split(":")
    ood = None
    if suffix == ["ood"]:  # seeds drawn from the other corpus, as the grid's out-of-domain cells
        other = OOD_SOURCE[corpus]
        ood = (load_corpus(data_dir, other, left), load_corpus(data_dir, other, right))
    split = make_split(
        load_corpus(data_dir, corpus, left),
        load_corpus(data_dir, corpus, right),
        alpha,
        n_seeds,
        split_seed,
        ood_seed_vectors=ood,
    )
    bad, wrong = corrupt_seeds(split.seeds, split.right.ids, split.truth, share, split_seed)
    rows = []
    for kind, seeds in (("right seeds", split.seeds), (f"{share:.0%} wrong", bad)):
        # Truth: every true pair; seed pairs (excluded from scoring) are the seeds given to the run.
        truth = {
            LEFT_ID: split.truth[:, 0],
            RIGHT_ID: split.truth[:, 1],
            IS_SEED: np.zeros(len(split.truth), bool),
        }
        t0 = time.perf_counter()
        links, summary = link_arrays(
            split.left.ids,
            split.left.vectors,
            split.right.ids,
            split.right.vectors,
            seeds[:, 0],
            seeds[:, 1],
            LinkConfig(),
        )
        wall = time.perf_counter() - t0
        scores = score_links(links, truth, {LEFT_ID: seeds[:, 0], RIGHT_ID: seeds[:, 1]})
        named = {(s["left_id"], s["right_id"]) for s in summary.get("suspect_seeds") or []}
        given = list(zip(seeds[:, 0].tolist(), seeds[:, 1].tolist(), strict=True))
        is_wrong = wrong if kind != "right seeds" else np.zeros(len(seeds), bool)
        rows.append(
            {
                "corpus": corpus,
                "pair": pair_label(left, right),
                "seed_kind": "out_of_domain" if ood else "in_domain",
                "alpha": alpha,
                "n_seeds": n_seeds,
                "seeds": kind,
                "wrong_seeds": int(is_wrong.sum()),
                "named_wrong": int(sum(p in named for p, w in zip(given, is_wrong, strict=True) if w)),
                "named_right": int(sum(p in named for p, w in zip(given, is_wrong, strict=True) if not w)),
                "verdict": summary.get("verdict"),
                "seconds": round(wall, 1),
                **{k: scores[k] for k in ("precision", "recall", "f1", "n_links", "n_correct", "n_true")},
            }
        )
    return rows


def report(rows: list[dict[str, Any]], path: Path) -> None:
    lines = [
        "# Wrong seeds",
        "",
        "Generated by `python benchmarks/wrong_seeds.py` (in-process engine, default configuration). Each",
        "cell is linked with its right seeds and with a share of them replaced by wrong pairs; P/R/F1 with",
        "the given seeds excluded; *named* counts the seeds the run lists in `suspect_seeds` (the check of",
        "docs/method.md, 'Seed check'). A share of wrong seeds is rounded up (30 %: 5 of 15). The seconds",
        "include the second fit of a run that dropped seeds; they are wall times of a shared 2-core",
        "machine (not a timing benchmark).",
        "",
        "| corpus | pair | seed objects | alpha | seeds | P | R | F1 | wrong named | right named | verdict "
        "| s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['corpus']} | {r['pair']} | {r['seed_kind'].replace('_', '-')} | {r['alpha']} | "
            f"{r['seeds']} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['f1']:.3f} | {r['named_wrong']} of {r['wrong_seeds']} | "
            f"{r['named_right']} of {r['n_seeds'] - r['wrong_seeds']} | {r['verdict']} | {r['seconds']:.0f} |"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    def options(ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--alpha", type=float, default=0.3)
        ap.add_argument("--n-seeds", type=int, default=15)
        ap.add_argument("--wrong", type=float, default=0.3, help="share of the seeds made wrong")

    def measure(args: argparse.Namespace) -> Iterator[dict]:
        # cells: corpus:left:right[:ood] (ood: seeds from the other corpus)
        for cell in args.cells:
            yield from run_cell(args.data_dir, cell, args.alpha, args.n_seeds, args.wrong, args.split_seed)

    return study_main(argv, __doc__.split("\n\n")[0], OUT, CELLS, options, measure, report)


if __name__ == "__main__":
    sys.exit(main())
