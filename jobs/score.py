#!/usr/bin/env python
"""Score a run's links against a truth table (evaluation only: the linker never sees the truth).

    python jobs/score.py --output OUT [--run-id ID] --truth truth.parquet [--seeds seeds.parquet]

Reads ``OUT/links`` (Delta) with a local Spark session, then prints precision, recall and F1 with seeds
excluded, and how the final link set grew round by round.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Score veclink-spark links against the truth.")
    p.add_argument("--output", required=True, help="the link job's --output")
    p.add_argument("--truth", required=True, help="Parquet with left_id, right_id (and optionally is_seed)")
    p.add_argument("--seeds", default=None, help="seed pairs (excluded from scoring)")
    p.add_argument("--run-id", default=None, help="run to score (default: the one in OUTPUT/summary.json)")
    args = p.parse_args(argv)

    import pandas as pd

    from veclink_spark.evaluate import score_by_round, score_links
    from veclink_spark.session import get_or_create_session
    from veclink_spark.store import RunStore

    run_id = args.run_id or json.loads((Path(args.output) / "summary.json").read_text())["run_id"]
    spark = get_or_create_session(app_name="veclink-spark score")
    links = RunStore(spark, args.output).read_run("links", run_id).toPandas()
    truth = pd.read_parquet(args.truth)
    seeds = pd.read_parquet(args.seeds) if args.seeds else None
    scores = score_links(links, truth, seeds)
    sys.stdout.write(
        f"run {run_id}: precision {scores['precision']:.3f}  recall {scores['recall']:.3f}  "
        f"F1 {scores['f1']:.3f}  ({scores['n_correct']} correct of {scores['n_links']} links; "
        f"{scores['n_true']} true pairs beyond the seeds)\n"
    )
    for row in score_by_round(links, truth, seeds):
        sys.stdout.write(
            f"  after round {row['round']}: "
            + "  ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k != "round"
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    exit_code = main()
    from veclink_spark.session import stop_active_session

    stop_active_session()
    sys.exit(exit_code)
