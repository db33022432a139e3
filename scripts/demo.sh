#!/usr/bin/env bash
# Quick start, command 1: set up this machine and link the bundled demo (975 WordNet glosses a side,
# all-mpnet-base-v2 on the left, all-MiniLM-L6-v2 on the right, 30 seed pairs), then score the links
# against the demo's truth table (which the linker never sees).
#
#   bash scripts/demo.sh [extra jobs/link.py options, e.g. --config conf/default.yaml]
#
# Output: demo-out/ (Delta tables links, summary, anchors, votes, rounds; summary.json).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
run_id="demo-$(date +%Y%m%d-%H%M%S)"
"$PYSPARK_PYTHON" jobs/link.py --left data/demo/left.parquet --right data/demo/right.parquet \
  --seeds data/demo/seeds.parquet --output demo-out --run-id "$run_id" "$@"
"$PYSPARK_PYTHON" jobs/score.py --output demo-out --run-id "$run_id" --truth data/demo/truth.parquet \
  --seeds data/demo/seeds.parquet
