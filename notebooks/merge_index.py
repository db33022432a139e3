# Databricks notebook source
# MAGIC %md
# MAGIC # veclink-spark: one merged index from a fitted model
# MAGIC
# MAGIC Every link run writes its fitted model under `<output>/model` (run `link_demo` first, or
# MAGIC `python jobs/link.py ... --output OUT`). This notebook loads it and writes one Delta table in one
# MAGIC model's space (`<output>/merged`): that side's rows as they are (with their link), the other side's
# MAGIC unlinked rows translated by the model, each linked pair once. `python jobs/merge.py` does the same.

# COMMAND ----------

import os

try:  # Databricks: widgets; elsewhere (tests, local runs): environment variables or the demo's output
    dbutils.widgets.text("output", "/tmp/veclink-demo-out")  # type: ignore[name-defined]  # noqa: F821
    dbutils.widgets.dropdown("into", "right", ["right", "left"])  # type: ignore[name-defined]  # noqa: F821
    params = {k: dbutils.widgets.get(k) for k in ("output", "into")}  # type: ignore[name-defined]  # noqa: F821
except NameError:
    params = {
        "output": os.environ.get("VECLINK_OUTPUT", "/tmp/veclink-demo-out"),
        "into": os.environ.get("VECLINK_INTO", "right"),
    }

# COMMAND ----------

import logging

from veclink_spark.model_spark import load_model, merge
from veclink_spark.session import get_or_create_session

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
spark = get_or_create_session()  # on Databricks: the notebook's own session
model = load_model(f"{params['output']}/model", spark)
info = model.info
logging.getLogger("notebook").info(
    "model of run %s: %s, %d links beyond %d seeds; left %d x %d, right %d x %d",
    info["run_id"],
    info["verdict"],
    info["n_links"],
    info["n_seeds"],
    info["n_left"],
    model.dim_left,
    info["n_right"],
    model.dim_right,
)

# COMMAND ----------

# MAGIC %md ## The merged index
# MAGIC Columns: source (left / right), source_id, linked_id (the other side's id of a linked pair),
# MAGIC probability (of the link), precision_estimate (of the links at least as confident; null for a
# MAGIC seed), vector (in the `into` model's space). `merge(..., min_precision=0.9)` would merge only the
# MAGIC links estimated at 0.9 or more.

# COMMAND ----------

merged = merge(
    model, info["left_table"], info["right_table"], params["output"], into=params["into"], spark=spark
)
by_source = (
    merged.groupBy("source", (merged["linked_id"].isNotNull()).alias("linked")).count().orderBy("source")
)
try:
    display(by_source)  # type: ignore[name-defined]  # noqa: F821
except NameError:
    by_source.show()

# COMMAND ----------

# MAGIC %md ## Translated rows: how far the link probabilities and translated vectors go
# MAGIC The translated rows are the ones a query in the `into` model finds only through the model's map;
# MAGIC the histogram of the linked rows' probabilities shows how sure the links are.

# COMMAND ----------

from veclink_spark.plots import probability_figure

probabilities = merged.where(merged["linked_id"].isNotNull()).select("probability").toPandas()
probability_figure(probabilities["probability"].to_numpy(), "probability of the merged index's links")
