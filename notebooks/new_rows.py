# Databricks notebook source
# MAGIC %md
# MAGIC # veclink-spark: link rows that arrived later
# MAGIC
# MAGIC Loads the model a link run fitted (`<output>/model`; run `link_demo` first) and links a table of new
# MAGIC rows (columns id and vector, ids the fitted table does not have) against the other side's table,
# MAGIC without refitting: the fitted maps vote, the new rows compete with the rows the model was fitted on,
# MAGIC and the links land as Delta tables under `<output>/new_rows_out`. `python jobs/link_new.py` does
# MAGIC the same.

# COMMAND ----------

import os

try:  # Databricks: widgets; elsewhere (tests, local runs): environment variables or the demo's output
    dbutils.widgets.text("output", "/tmp/veclink-demo-out")  # type: ignore[name-defined]  # noqa: F821
    dbutils.widgets.text("new", "")  # type: ignore[name-defined]  # noqa: F821
    dbutils.widgets.dropdown("side", "left", ["left", "right"])  # type: ignore[name-defined]  # noqa: F821
    params = {k: dbutils.widgets.get(k) for k in ("output", "new", "side")}  # type: ignore[name-defined]  # noqa: F821
except NameError:
    params = {
        "output": os.environ.get("VECLINK_OUTPUT", "/tmp/veclink-demo-out"),
        "new": os.environ.get("VECLINK_NEW", ""),
        "side": os.environ.get("VECLINK_SIDE", "left"),
    }
if not params["new"]:
    raise ValueError(
        "set 'new' to a table of new rows (Delta, Parquet or a catalog table: columns id, vector)"
    )

# COMMAND ----------

import logging

from veclink_spark.model_spark import link_new, load_model
from veclink_spark.session import get_or_create_session

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
spark = get_or_create_session()  # on Databricks: the notebook's own session
model = load_model(f"{params['output']}/model", spark)
logging.getLogger("notebook").info(
    "model of run %s: %s, %d links", model.info["run_id"], model.info["verdict"], model.info["n_links"]
)

# COMMAND ----------

# MAGIC %md ## The new rows' links
# MAGIC `precision_estimate`: the estimated precision of all new links at least as confident as this one,
# MAGIC estimated on these tables as a run's links are (so one number cuts the table: `min_precision=0.9`
# MAGIC keeps the links at 0.9 or more). `probability`: the share of the model's bagged maps that vote
# MAGIC for the link (posterior mean). The summary carries the new links' `estimated_precision` and the
# MAGIC fitted run's verdict.

# COMMAND ----------

result = link_new(model, params["new"], f"{params['output']}/new_rows_out", side=params["side"], spark=spark)
summary = result.summary
logging.getLogger("notebook").info(
    "new rows: %s", {k: summary[k] for k in ("new_rows", "n_links", "estimated_precision", "trusted_links")}
)
new_links = result.links.orderBy("precision_estimate", ascending=False)
try:
    display(new_links)  # type: ignore[name-defined]  # noqa: F821
except NameError:
    new_links.show(10)

# COMMAND ----------

# MAGIC %md ## How sure: the new links' probabilities

# COMMAND ----------

from veclink_spark.plots import probability_figure

probabilities = new_links.select("probability").toPandas()
probability_figure(
    probabilities["probability"].to_numpy(), f"{summary['n_links']} links of {summary['new_rows']} new rows"
)
