#!/usr/bin/env python
"""Run veclink's in-process engine (``link_arrays``) on one benchmark split, with config overrides, and
print P / R / F1 (seeds excluded), the verdict, the consistency checks and the last mixture cuts.

The tool behind the engine measurements of docs/method.md; the grid tool is ``benchmarks/grid.py``.

    python benchmarks/link_split.py debian all-MiniLM-L6-v2 multilingual-e5-small --alpha 0.3 \\
        --out-of-domain advanced.refine.init=seeds advanced.refine.polish_rounds=0

Overrides are PATH=VALUE as in conf/default.yaml (VALUE parsed as YAML). Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness.runner import config_overrides  # noqa: E402
from veclink_spark.arrays import link_arrays  # noqa: E402
from veclink_spark.config import LinkConfig  # noqa: E402
from veclink_spark.evaluate import score_links  # noqa: E402
from veclink_spark.splits import load_corpus, make_split  # noqa: E402

OTHER = {"wordnet": "debian", "debian": "wordnet"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", choices=sorted(OTHER))
    ap.add_argument("left_encoder")
    ap.add_argument("right_encoder")
    ap.add_argument("overrides", nargs="*", help="PATH=VALUE: scale.fit_rows=3000, advanced.refine.mode=none")
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--alpha", type=float, default=0.3)
    ap.add_argument("--seeds", type=int, default=15)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--out-of-domain", action="store_true", help="seeds from the other corpus")
    args = ap.parse_intermixed_args(argv)
    try:
        conf = config_overrides(args.overrides)
    except ValueError as exc:
        ap.error(str(exc))
    cfg = LinkConfig.from_dict(conf)
    c1 = load_corpus(args.data_dir, args.corpus, args.left_encoder)
    c2 = load_corpus(args.data_dir, args.corpus, args.right_encoder)
    ood = None
    if args.out_of_domain:
        other = OTHER[args.corpus]
        ood = (
            load_corpus(args.data_dir, other, args.left_encoder),
            load_corpus(args.data_dir, other, args.right_encoder),
        )
    sp = make_split(c1, c2, alpha=args.alpha, n_seeds=args.seeds, seed=args.split_seed, ood_seed_vectors=ood)
    t0 = time.time()
    links, summary = link_arrays(
        sp.left.ids, sp.left.vectors, sp.right.ids, sp.right.vectors, sp.seeds[:, 0], sp.seeds[:, 1], cfg
    )
    truth = {"left_id": sp.truth[:, 0], "right_id": sp.truth[:, 1], "is_seed": sp.truth_is_seed}
    sc = score_links(links, truth, sp.seeds)
    cuts = [h.get("mixture") for h in summary["history"] if h.get("mixture")][-1:]
    print(
        f"P {sc['precision']:.3f} R {sc['recall']:.3f} F1 {sc['f1']:.3f} ({sc['n_links']} links), "
        f"{summary['verdict']}, link consistency {summary['link_consistency_spearman']}, "
        f"seed consistency {summary['seed_consistency_spearman']}, "
        f"polish retention {summary['polish_retention']}, "
        f"{summary['rounds']} rounds, "
        f"{time.time() - t0:.0f} s, last mixture cut {cuts[0] if cuts else None}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
