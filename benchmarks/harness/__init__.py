"""Benchmark building blocks: the grid runner, its report, and the classical baselines.

Plain numpy / scikit-learn / scipy / faiss code, no Spark (the Spark engine runs through the library).
Splits and scoring are the library's (``veclink_spark.splits``, ``veclink_spark.evaluate``), so the
demo builder and ``jobs/score.py`` work from the installed package.

* :mod:`benchmarks.harness.runner` runs a grid of (split, method) cells and stores one JSON line per run;
  :mod:`benchmarks.harness.report` renders them.
* :mod:`benchmarks.harness.baselines` holds the baselines (Procrustes, CCA, least squares, MLP,
  relative representations, self-learning Procrustes), each ending in mutual nearest neighbours.
"""
