"""Numeric kernels of the method: plain numpy (and scikit-learn) functions on arrays, one module a phase.

:mod:`.centre` (centring, normalising, rounded similarities), :mod:`.signatures` (views, anchor
signatures, distribution descriptors, blocking keys), :mod:`.blocking` (block caps, cells, a ``geh``
block's search), :mod:`.maps` (Procrustes maps, CSLS block search and scores), :mod:`.promotion` (Otsu
threshold, mixture cut, one-to-one matching), :mod:`.samples` (hash and neighbourhood samples). They
import only numpy, scipy, scikit-learn and each other; callers import from the module that defines a
function (this package re-exports nothing).

The same functions run in three places: inside Spark executors (called by the Arrow/pandas UDFs of
:mod:`veclink_spark.stages`), on the driver (view sampling, Otsu threshold, promotion, map fitting),
and in the in-process backend (:mod:`veclink_spark.backends.in_process`). Sharing them is what makes the
Spark job and the reference give the same links for the same input, config and seed.

Everything here is deterministic given its inputs (random choices take a ``numpy.random.Generator``).
Similarities are rounded to :data:`~veclink_spark.kernels.centre.SIM_DECIMALS` decimals so that BLAS
summation-order noise (which differs with batch shapes between executors and the reference) cannot
flip an argmax; ties are then broken by the smaller id, the same way on both sides.
"""
