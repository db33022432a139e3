#!/usr/bin/env python
"""Exact duplicate rows in one table: what they cost, with and without the run's grouping.

One grid cell (default: Debian mpnet / MiniLM-L6, alpha 0.3, 15 in-domain seeds, split seed 0); a share
(``--share``, default 0.2) of the right table's rows is stored twice under new ids (the same text
stored twice). Scored two ways: ``strict`` counts a link right only with the true partner's original
id; ``as objects`` also counts a link to a copy of the true partner right (it is the same object). Run
once as the product runs (duplicates grouped, veclink_spark.duplicates) and once with the grouping off.

    python benchmarks/duplicates.py [--corpus debian] [--left all-mpnet-base-v2] [--right all-MiniLM-L6-v2]

Writes benchmarks/duplicates/results.jsonl and prints one line per run. Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from veclink_spark import duplicates as dup  # noqa: E402
from veclink_spark.arrays import link_arrays  # noqa: E402
from veclink_spark.config import LinkConfig  # noqa: E402
from veclink_spark.splits import load_corpus, make_split  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--corpus", default="debian")
    ap.add_argument("--left", default="all-mpnet-base-v2")
    ap.add_argument("--right", default="all-MiniLM-L6-v2")
    ap.add_argument("--alpha", type=float, default=0.3)
    ap.add_argument("--share", type=float, default=0.2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "duplicates" / "results.jsonl")
    args = ap.parse_args(argv)
    if not args.data_dir.is_dir():
        ap.error(f"no data folder {args.data_dir}: this benchmark needs ../shared/data")
    sp = make_split(
        load_corpus(args.data_dir, args.corpus, args.left),
        load_corpus(args.data_dir, args.corpus, args.right),
        args.alpha,
        15,
        0,
    )
    rng = np.random.default_rng(1)
    n = len(sp.right.ids)
    copied = rng.choice(n, size=int(round(args.share * n)), replace=False)
    new_ids = rng.choice(2**52, size=len(copied), replace=False).astype(np.int64) + 2**52
    right_ids = np.concatenate([sp.right.ids, new_ids])
    right = np.vstack([sp.right.vectors, sp.right.vectors[copied]])
    order = rng.permutation(len(right_ids))
    right_ids, right = right_ids[order], right[order]
    copy_of = dict(zip(new_ids.tolist(), sp.right.ids[copied].tolist(), strict=True))
    seeds = {(int(a), int(b)) for a, b in sp.seeds.tolist()}
    truth = {(int(a), int(b)) for a, b in sp.truth.tolist()} - seeds
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for grouping in (True, False):
        patch = (
            mock.patch.object(dup, "DUPLICATE_COSINE", 2.0)  # nothing is that similar: no groups
            if not grouping
            else mock.patch.object(dup, "DUPLICATE_COSINE", dup.DUPLICATE_COSINE)
        )
        t0 = time.time()
        with patch:
            links, summary = link_arrays(
                sp.left.ids, sp.left.vectors, right_ids, right, sp.seeds[:, 0], sp.seeds[:, 1], LinkConfig()
            )
        got = links[~links["is_seed"]]
        pairs = list(zip(got["left_id"].tolist(), got["right_id"].tolist(), strict=True))
        strict = sum(p in truth for p in pairs)
        objects = sum((a, copy_of.get(b, b)) in truth for a, b in pairs)
        row = {
            "cell": f"{args.corpus} {args.left} / {args.right} alpha {args.alpha}",
            "duplicated_right_rows": len(copied),
            "grouping": grouping,
            "links": len(pairs),
            "precision_strict": strict / max(len(pairs), 1),
            "precision_as_objects": objects / max(len(pairs), 1),
            "recall_as_objects": objects / len(truth),
            "estimated_precision": summary["estimated_precision"],
            "duplicates": summary["duplicates"],
            "seconds": round(time.time() - t0, 1),
        }
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
