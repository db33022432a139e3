#!/usr/bin/env python
"""Benchmark: the Spark job against the in-process reference on one real split.

    python jobs/compare_engines.py [--data-dir ../shared/data] [--corpus wordnet] \
        [--left all-mpnet-base-v2] [--right all-MiniLM-L6-v2] [--alpha 0.3] [--seeds 15] [--split-seed 0] \
        [--config conf/default.yaml] [--out bench-out/engines]

Builds the split by the benchmark protocol, runs veclink_spark.link_arrays (numpy) and the Spark Linker
(local session, Delta output) on it with the same config, prints and writes (OUT/engines.json) the wall
time of each, whether the two link sets are identical, and both scores against the truth.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--corpus", default="wordnet")
    p.add_argument("--left", default="all-mpnet-base-v2")
    p.add_argument("--right", default="all-MiniLM-L6-v2")
    p.add_argument("--alpha", type=float, default=0.3)
    p.add_argument("--seeds", type=int, default=15)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--config", default=None)
    p.add_argument("--out", default="bench-out/engines")
    p.add_argument("--master", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("py4j").setLevel(logging.WARNING)

    import numpy as np
    import pandas as pd

    from veclink_spark import LinkConfig, Linker, link_arrays
    from veclink_spark.benchmark.evaluate import score_links
    from veclink_spark.benchmark.splits import load_corpus, make_split, write_split
    from veclink_spark.session import get_or_create_session

    out = Path(args.out)
    split = make_split(
        load_corpus(args.data_dir, args.corpus, args.left),
        load_corpus(args.data_dir, args.corpus, args.right),
        args.alpha,
        args.seeds,
        args.split_seed,
    )
    write_split(split, out / "split")
    cfg = LinkConfig.from_yaml(args.config) if args.config else LinkConfig()
    truth = pd.read_parquet(out / "split" / "truth.parquet")
    seeds = pd.read_parquet(out / "split" / "seeds.parquet")

    spark = get_or_create_session(master=args.master, app_name="veclink-spark compare engines")
    inputs_left = pd.read_parquet(out / "split" / "left.parquet")
    inputs_right = pd.read_parquet(out / "split" / "right.parquet")
    t0 = time.time()
    ref, _ = link_arrays(
        inputs_left["id"].to_numpy(),
        np.stack(inputs_left["vector"]),
        inputs_right["id"].to_numpy(),
        np.stack(inputs_right["vector"]),
        seeds["left_id"].to_numpy(),
        seeds["right_id"].to_numpy(),
        cfg,
    )
    t_ref = time.time() - t0
    run_id = f"engines-{int(time.time())}"
    t0 = time.time()
    res = Linker(cfg, spark).link(
        str(out / "split" / "left.parquet"),
        str(out / "split" / "right.parquet"),
        str(out / "split" / "seeds.parquet"),
        str(out / "delta"),
        run_id=run_id,
    )
    got: pd.DataFrame = res.links.toPandas()
    t_spark = time.time() - t0
    a = set(zip(got["left_id"].tolist(), got["right_id"].tolist(), strict=False))
    b = set(zip(ref["left_id"].tolist(), ref["right_id"].tolist(), strict=False))
    report = {
        "corpus": args.corpus,
        "left": args.left,
        "right": args.right,
        "alpha": args.alpha,
        "seeds": args.seeds,
        "split_seed": args.split_seed,
        "n_left": len(inputs_left),
        "n_right": len(inputs_right),
        "cores": os.cpu_count(),
        "spark_master": spark.conf.get("spark.master"),
        "reference_seconds": round(t_ref, 1),
        "spark_seconds": round(t_spark, 1),
        "identical_links": a == b,
        "n_links_spark": len(a),
        "n_links_reference": len(b),
        "symmetric_difference": len(a ^ b),
        "rounds": res.summary["rounds"],
        "score_spark": score_links(got, truth, seeds),
        "score_reference": score_links(ref, truth, seeds),
    }
    (out / "engines.json").write_text(json.dumps(report, indent=2, default=str))
    sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    return 0 if a == b else 1


if __name__ == "__main__":
    sys.exit(main())
