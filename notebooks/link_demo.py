# Databricks notebook source
# MAGIC %md
# MAGIC # veclink-spark: link two embedding tables
# MAGIC
# MAGIC Links the rows of two embedding tables made by different encoders, from a handful of known pairs.
# MAGIC Set the widgets (or the defaults below) to your tables; the links land as Delta tables under `output`.
# MAGIC On Databricks, install the library on the cluster (`%pip install /path/to/veclink-spark`, without the
# MAGIC `spark` extra: the runtime provides Spark and Delta).

# COMMAND ----------

import os

try:  # Databricks: widgets; elsewhere (tests, local runs): environment variables or the bundled demo
    dbutils.widgets.text("left", "data/demo/left.parquet")  # type: ignore[name-defined]  # noqa: F821
    dbutils.widgets.text("right", "data/demo/right.parquet")  # type: ignore[name-defined]  # noqa: F821
    dbutils.widgets.text("seeds", "data/demo/seeds.parquet")  # type: ignore[name-defined]  # noqa: F821
    dbutils.widgets.text("output", "/tmp/veclink-demo-out")  # type: ignore[name-defined]  # noqa: F821
    dbutils.widgets.text("truth", "data/demo/truth.parquet")  # type: ignore[name-defined]  # noqa: F821
    params = {k: dbutils.widgets.get(k) for k in ("left", "right", "seeds", "output", "truth")}  # type: ignore[name-defined]  # noqa: F821,E501
except NameError:
    params = {
        "left": os.environ.get("VECLINK_LEFT", "data/demo/left.parquet"),
        "right": os.environ.get("VECLINK_RIGHT", "data/demo/right.parquet"),
        "seeds": os.environ.get("VECLINK_SEEDS", "data/demo/seeds.parquet"),
        "output": os.environ.get("VECLINK_OUTPUT", "/tmp/veclink-demo-out"),
        "truth": os.environ.get("VECLINK_TRUTH", "data/demo/truth.parquet"),
    }
# truth: an optional table of true pairs (left_id, right_id), only for the precision / recall figure;
# empty for your own tables.
config_overrides = {}  # e.g. {"scale": {"max_rounds": 2}}; see conf/default.yaml
if os.environ.get("VECLINK_NOTEBOOK_FAST"):
    config_overrides = {
        "links": {"ask": "always"},
        "advanced": {"views": {"base_views": 8}, "bootstrap": {"max_rounds": 1}, "refine": {"max_rounds": 1}},
    }

# COMMAND ----------

import logging

from veclink_spark import LinkConfig, Linker
from veclink_spark.session import get_or_create_session

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
spark = get_or_create_session()  # on Databricks: the notebook's own session
result = Linker(LinkConfig.from_dict(config_overrides), spark).link(
    params["left"], params["right"], params["seeds"], params["output"]
)

# COMMAND ----------

# MAGIC %md ## The run: did it take off?

# COMMAND ----------

summary = result.summary
verdict = (
    f"{summary['verdict']}: {summary['n_links']} links beyond {summary['n_seeds']} seeds "
    f"in {summary['rounds']} rounds; estimated precision {summary['estimated_precision']}, "
    f"{summary['trusted_links']} links estimated at 0.9 or more"
    + ("; questions written (notebooks/answer_questions.py)" if summary.get("questions_written") else "")
)
logging.getLogger("notebook").info(verdict)
for reason in summary["reasons"]:
    logging.getLogger("notebook").warning("why: %s", reason)
# precision_estimate: the estimated precision of every link at least as confident (seeds: null, first)
links = result.links.orderBy(result.links["precision_estimate"].desc_nulls_first())
try:
    display(links)  # type: ignore[name-defined]  # noqa: F821
except NameError:
    links.show(20)

# COMMAND ----------

# MAGIC %md ## The run in figures
# MAGIC Link scores with the cut (left); links after each round, and with a truth table precision and
# MAGIC recall of each committed round (right). `python jobs/link.py ... --report [--truth T]` writes the
# MAGIC same figures as PNG under `<output>/report`.

# COMMAND ----------

from veclink_spark.linker import precision_recall_by_round
from veclink_spark.plots import rounds_figure, score_figure

score_figure(result.links.toPandas(), summary)

# COMMAND ----------

by_round = None
if params["truth"]:
    by_round = precision_recall_by_round(spark, params["output"], result.run_id, params["truth"])
rounds_figure(summary, by_round)
