"""Where the vectors live: the :class:`~veclink_spark.backends.base.Backend` protocol
(:mod:`veclink_spark.backends.base`), the in-process numpy backend
(:mod:`veclink_spark.backends.in_process`) and the Spark backend (:mod:`veclink_spark.backends.spark`).
base and in_process import no Spark; spark imports both, never the other way."""
