"""Where the vectors live: the :class:`~veclink_spark.backends.base.Backend` protocol
(:mod:`veclink_spark.backends.base`) and the in-process numpy backend
(:mod:`veclink_spark.backends.in_process`); the Spark backend is :mod:`veclink_spark.spark_backend`."""
