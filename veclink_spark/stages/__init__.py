"""Pipeline stages on Spark DataFrames: each a function from DataFrame(s) and plain arrays/config to a
DataFrame, with no actions, no writes and no session look-ups inside. Only the round driver
(:mod:`veclink_spark.backends.spark`) triggers actions and writes.

Stages, in round order: :mod:`.signatures` (anchor signatures and hash keys, Arrow UDF on executors),
:mod:`.candidates` (equi-join of the two sides on (view, key) as a co-group, best match per block),
:mod:`.mutual_nn` (per-view mutual nearest neighbours by group-by), :mod:`.evidence` (votes per pair,
accumulation, vote histogram), :mod:`.refine` (cross-covariance of linked pairs for the Procrustes maps).
"""
