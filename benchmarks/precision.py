#!/usr/bin/env python
"""What precision 0.95 costs: how much recall each per-link score keeps at that precision.

For each cell (a benchmark split: alpha, 15 in-domain seeds, fresh ids) the in-process engine fits a
model with the default configuration. Its links are then ranked by one score at a time, and the report
gives the largest recall of a best-first prefix whose precision is at least ``--precision``:

* ``csls``: 2 cos - r_left - r_right under the model's orthogonal map, on the centred tables (r: mean
  of a row's 10 best similarities over the whole other table, exact search with faiss);
* ``cosine``: cos of the mapped left vector and the right vector;
* ``margin``: the smaller, over both directions, of the link's cosine minus the row's best cosine to
  any other row;
* ``probability``: the links table's column (the vote posterior).

It also says what the wrong links are: the cosine, in the left encoder's space, between a wrong link's
left object and the left encoder's vector of its right object (near 1: near-duplicate objects).
The truth is read only here, after the run.

    python benchmarks/precision.py                 # default cells -> benchmarks/precision/
    python benchmarks/precision.py --append --alpha 0.15 --split-seed 2 --cells CELL ...  # add rows
    python benchmarks/precision.py --report-only

Exit codes: 0 done, 2 bad input (no shared data: nothing written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness.runner import pair_label  # noqa: E402
from benchmarks.harness.study import study_main  # noqa: E402
from veclink_spark.arrays import fit_arrays  # noqa: E402
from veclink_spark.kernels.centre import normalise_rows  # noqa: E402
from veclink_spark.splits import load_corpus, make_split  # noqa: E402

OUT = ROOT / "benchmarks" / "precision"
CELLS = [
    "debian:all-mpnet-base-v2:all-MiniLM-L6-v2",
    "debian:all-MiniLM-L6-v2:all-MiniLM-L3-v2-paraphrase",
    "wordnet:all-mpnet-base-v2:all-MiniLM-L6-v2",
]
K = 10  # CSLS neighbourhood, as the engine's


def recall_at_precision(score: np.ndarray, right: np.ndarray, n_true: int, precision: float) -> float:
    """Largest recall of a best-first prefix (by ``score``) whose precision is at least ``precision``."""
    order = np.argsort(-score, kind="stable")
    hits = np.cumsum(right[order])
    ok = hits / np.arange(1, len(order) + 1) >= precision
    return round(float(hits[ok].max() / n_true), 4) if ok.any() else 0.0


def run_cell(data_dir: str, cell: str, alpha: float, precision: float, split_seed: int) -> dict[str, Any]:
    corpus, left, right = cell.split(":")
    left_corpus = load_corpus(data_dir, corpus, left)
    split = make_split(left_corpus, load_corpus(data_dir, corpus, right), alpha, 15, split_seed)
    seeds = split.seeds
    model = fit_arrays(
        split.left.ids, split.left.vectors, split.right.ids, split.right.vectors, seeds[:, 0], seeds[:, 1]
    )
    links = model.links[~model.links["is_seed"].astype(bool)]
    truth = set(zip(split.truth[:, 0].tolist(), split.truth[:, 1].tolist(), strict=True))
    seeded = set(seeds[:, 0].tolist())
    n_true = sum(1 for a, _ in truth if a not in seeded)
    right_link = np.array(
        [(a, b) in truth for a, b in zip(links["left_id"], links["right_id"], strict=True)], dtype=bool
    )
    # Both tables centred as the run saw them, the left mapped by the model's orthogonal map (as the
    # engine's rounds score pairs); unit rows; exact top-K both ways (faiss inner product).
    x = normalise_rows(model.centred(split.left.vectors, "left") @ model.map).astype(np.float32)
    y = model.centred(split.right.vectors, "right").astype(np.float32)
    sim_l, nn_l = _search(y, x)
    sim_r, nn_r = _search(x, y)
    lpos = {v: i for i, v in enumerate(split.left.ids.tolist())}
    rpos = {v: i for i, v in enumerate(split.right.ids.tolist())}
    li = np.array([lpos[v] for v in links["left_id"].tolist()], dtype=np.int64)
    ri = np.array([rpos[v] for v in links["right_id"].tolist()], dtype=np.int64)
    cos = np.einsum("ij,ij->i", x[li], y[ri]).astype(np.float64)
    csls = 2 * cos - sim_l.mean(axis=1)[li] - sim_r.mean(axis=1)[ri]
    other_l = np.where(nn_l[li, 0] == ri, sim_l[li, 1], sim_l[li, 0])
    other_r = np.where(nn_r[ri, 0] == li, sim_r[ri, 1], sim_r[ri, 0])
    margin = np.minimum(cos - other_l, cos - other_r)
    scores = {
        "csls": csls,
        "cosine": cos,
        "margin": margin,
        "probability": links["probability"].to_numpy(np.float64),
    }
    # What the wrong links are: their two objects compared in the left encoder's space.
    ids, vecs = left_corpus
    pos = {v: i for i, v in enumerate(np.asarray(ids).tolist())}
    lv = normalise_rows(np.asarray(vecs, dtype=np.float64))
    wrong = ~right_link
    src_l = split.left.source_ids[li[wrong]].tolist()
    src_r = split.right.source_ids[ri[wrong]].tolist()
    twin = np.array([lv[pos[a]] @ lv[pos[b]] for a, b in zip(src_l, src_r, strict=True)])
    return {
        "corpus": corpus,
        "pair": pair_label(left, right),
        "alpha": alpha,
        "split_seed": split_seed,
        "n_true": n_true,
        "precision_target": precision,
        "n_links": int(len(links)),
        "precision": round(float(right_link.mean()), 4) if len(links) else 0.0,
        "recall": round(float(right_link.sum() / n_true), 4),
        "verdict": model.info["verdict"],
        **{f"recall_{k}": recall_at_precision(v, right_link, n_true, precision) for k, v in scores.items()},
        "wrong_twin_cos_median": round(float(np.median(twin)), 3) if len(twin) else None,
        "wrong_twin_cos_ge_099": round(float(np.mean(twin >= 0.99)), 3) if len(twin) else None,
    }


def _search(base: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    sim, nn = index.search(queries, K)
    return sim.astype(np.float64), nn


def report(rows: list[dict[str, Any]], path: Path) -> None:
    lines = [
        "# What precision 0.95 costs",
        "",
        "Generated by `python benchmarks/precision.py` (in-process engine, default configuration, 15",
        "in-domain seeds; the split seed of each row). The run's links ranked by one score at a time: the",
        "largest recall of a best-first prefix at the target precision, with the number of right links in",
        "that prefix (scores: see the script's doc). *Twin cos*: for the wrong links, the median cosine of",
        "their two objects in the left encoder's space, and the share at or above 0.99 (near-duplicates).",
        "",
        "| corpus | pair | alpha | split | verdict | links | P | R | target P | R by CSLS | R by cosine "
        "| R by margin | R by probability | twin cos (median) | twin cos >= 0.99 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        # Rows written before the split seed and the true-pair count were recorded: split 0, no count.
        n_true = r.get("n_true")
        by = " | ".join(
            f"{r[k]:.3f}" + (f" ({round(r[k] * n_true)})" if n_true else "")
            for k in ("recall_csls", "recall_cosine", "recall_margin", "recall_probability")
        )
        lines.append(
            f"| {r['corpus']} | {r['pair']} | {r['alpha']} | {r.get('split_seed', 0)} | {r['verdict']} | "
            f"{r['n_links']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['precision_target']} | {by} | "
            f"{r['wrong_twin_cos_median']} | {r['wrong_twin_cos_ge_099']} |"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    def options(ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--alpha", type=float, default=0.3)
        ap.add_argument("--precision", type=float, default=0.95)

    def measure(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
        for cell in args.cells:
            yield run_cell(args.data_dir, cell, args.alpha, args.precision, args.split_seed)

    return study_main(argv, __doc__.split("\n\n")[0], OUT, CELLS, options, measure, report, append=False)


if __name__ == "__main__":
    sys.exit(main())
