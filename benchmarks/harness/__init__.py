"""Benchmark building blocks: the split protocol, scoring, and classical baselines.

Plain numpy / scikit-learn / scipy / faiss code, no Spark. The protocol is the one of
``design/benchmark.md``:

* :mod:`benchmarks.harness.splits` builds a split (left, right, seeds, truth) from one corpus
  embedded by two encoders, with fresh random ids and shuffled rows, and writes it as parquet.
* :mod:`benchmarks.harness.evaluate` scores links against the truth, seeds excluded.
* :mod:`benchmarks.harness.baselines` holds the baselines (Procrustes, CCA, least squares, MLP,
  relative representations, self-learning Procrustes), each ending in mutual nearest neighbours.
"""

from __future__ import annotations

from .evaluate import best_threshold, reliability, score_by_round, score_links
from .splits import Split, SplitTable, load_corpus, make_split, read_split, write_split

__all__ = [
    "Split",
    "SplitTable",
    "load_corpus",
    "make_split",
    "read_split",
    "write_split",
    "score_links",
    "best_threshold",
    "score_by_round",
    "reliability",
]
