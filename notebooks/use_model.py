# Databricks notebook source
# MAGIC %md
# MAGIC # veclink-spark: use a fitted model (one merged index, new rows, figures)
# MAGIC
# MAGIC Every link run writes its fitted model under `<output>/model` (run `link_demo` first, or
# MAGIC `python jobs/link.py ... --output OUT`). This notebook loads it, shows the run's figures, writes one
# MAGIC merged index in the right model's space, and links rows that arrived later (when `new` is set: a
# MAGIC table of new left rows, columns id and vector, with ids the fitted table does not have).

# COMMAND ----------

import os

try:  # Databricks: widgets; elsewhere (tests, local runs): environment variables or the demo's output
    dbutils.widgets.text("output", "/tmp/veclink-demo-out")  # type: ignore[name-defined]  # noqa: F821
    dbutils.widgets.text("new", "")  # type: ignore[name-defined]  # noqa: F821
    params = {k: dbutils.widgets.get(k) for k in ("output", "new")}  # type: ignore[name-defined]  # noqa: F821
except NameError:
    params = {
        "output": os.environ.get("VECLINK_OUTPUT", "/tmp/veclink-demo-out"),
        "new": os.environ.get("VECLINK_NEW", ""),
    }

# COMMAND ----------

import logging

from veclink_spark.model import LinkModel
from veclink_spark.model_spark import merge
from veclink_spark.plots import rounds_figure, score_figure
from veclink_spark.session import get_or_create_session

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
spark = get_or_create_session()  # on Databricks: the notebook's own session
model = LinkModel.load(f"{params['output']}/model", spark)
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

# MAGIC %md ## The run in two figures: link scores, links per round

# COMMAND ----------

import json
from pathlib import Path

summary = json.loads(Path(params["output"], "summary", f"{info['run_id']}.json").read_text())
links_pdf = model.links.toPandas()
score_figure(links_pdf, summary)

# COMMAND ----------

rounds_figure(summary)

# COMMAND ----------

# MAGIC %md ## One merged index in the right model's space
# MAGIC Right rows as they are (with their link), unlinked left rows translated by the model.

# COMMAND ----------

merged = merge(model, info["left_table"], info["right_table"], params["output"], into="right", spark=spark)
by_source = merged.groupBy("source").count().orderBy("source")
try:
    display(by_source)  # type: ignore[name-defined]  # noqa: F821
except NameError:
    by_source.show()

# COMMAND ----------

# MAGIC %md ## Rows that arrived later
# MAGIC Linked with the fitted maps, competing with the rows the model was fitted on.

# COMMAND ----------

new_links = None
if params["new"]:
    result = model.link(params["new"], f"{params['output']}/new_rows_out", side="left", spark=spark)
    new_links = result.links.orderBy("probability", ascending=False)
    logging.getLogger("notebook").info(
        "new rows: %s", {k: result.summary[k] for k in ("new_rows", "n_links")}
    )
    try:
        display(new_links)  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        new_links.show(10)
