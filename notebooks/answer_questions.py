# Databricks notebook source
# MAGIC %md
# MAGIC # veclink-spark: answer a run's questions
# MAGIC
# MAGIC A run that is not sure of its links (a stall, or an estimated precision under 0.9; `--ask`:
# MAGIC always) writes `questions` under its output: the pairs whose yes / no answer should help the next
# MAGIC run most. This notebook shows each pair's two objects (give `texts_left` / `texts_right`: tables of
# MAGIC id and text; a `side` column, as in `data/demo/texts.parquet`, picks that side's rows), takes your
# MAGIC answers and writes them as a Delta table for the next run:
# MAGIC `python jobs/link.py ... --answers <output>/answers` (confirmed pairs become seeds, rejected pairs
# MAGIC are never linked). Beside a no you can name the left row's partner, a known pair.

# COMMAND ----------

import os

NAMES = ("output", "texts_left", "texts_right", "answers")
try:  # Databricks: widgets; elsewhere (tests, local runs): environment variables
    for name, default in zip(NAMES, ("/tmp/veclink-demo-out", "", "", ""), strict=True):
        dbutils.widgets.text(name, default)  # type: ignore[name-defined]  # noqa: F821
    params = {k: dbutils.widgets.get(k) for k in NAMES}  # type: ignore[name-defined]  # noqa: F821
except NameError:
    params = {
        "output": os.environ.get("VECLINK_OUTPUT", "/tmp/veclink-demo-out"),
        "texts_left": os.environ.get("VECLINK_TEXTS_LEFT", ""),
        "texts_right": os.environ.get("VECLINK_TEXTS_RIGHT", ""),
        "answers": os.environ.get("VECLINK_ANSWERS", ""),
    }
# answers: one entry per question, in question order, y or n ("y,n,y,..."), or "question:y" pairs
# ("3:n,7:y"); questions left out are not answered. "n=ID" (or "3:n=ID") says no and names the right
# row ID that is the left row's object (found with find_right below): that pair is written as a yes.

# COMMAND ----------

import logging

from pyspark.sql import functions as F
from pyspark.sql.types import IntegralType

from veclink_spark.inputs import read_table
from veclink_spark.session import get_or_create_session
from veclink_spark.store import RunStore

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
spark = get_or_create_session()  # on Databricks: the notebook's own session
store = RunStore(spark, params["output"])
run_id = store.read_json("summary.json")["run_id"]  # the latest run under this output
questions = store.read_run("questions", run_id).drop("run_id")


def texts(location: str, side: str):
    """A texts table (id, text) for one side; a 'side' column selects that side's rows."""
    df = read_table(spark, location, f"texts_{side}")
    if "side" in df.columns:
        df = df.where(F.col("side") == side)
    return df.select(F.col("id"), F.col("text"))


shown = questions
for side in ("left", "right"):
    if params[f"texts_{side}"]:
        t = texts(params[f"texts_{side}"], side)
        shown = shown.join(
            t.withColumnRenamed("id", f"{side}_id").withColumnRenamed("text", f"{side}_text"),
            f"{side}_id",
            "left",
        )
shown = shown.orderBy("question")
try:
    display(shown)  # type: ignore[name-defined]  # noqa: F821
except NameError:
    shown.show(truncate=80)

# COMMAND ----------

# MAGIC %md ## Your answers
# MAGIC Yes when the two rows are the same object. When the answer is no and you can find the left
# MAGIC object among the right rows (`find_right("words of its text")` lists the right rows whose text
# MAGIC holds them), answer `n=ID` with that row's id: a named partner is a known pair, and after a stall
# MAGIC whose questions are all no, known pairs are what lifts the next run. Set the `answers` widget, or
# MAGIC edit `given` below.

# COMMAND ----------


def find_right(words: str, limit: int = 20):
    """The right rows whose text holds ``words`` (case-insensitive): where to look for a partner."""
    if not params["texts_right"]:
        raise ValueError("give texts_right to search the right rows")
    t = texts(params["texts_right"], "right")
    return t.where(F.lower(F.col("text")).contains(words.lower())).limit(limit)


def parse(text: str, n: int) -> dict[int, tuple[bool, str | None]]:
    """'y,n,n=ID,...' (question order) or '3:n,7:y,9:n=ID' into {question: (match, named partner)}."""
    out: dict[int, tuple[bool, str | None]] = {}
    items = [s.strip() for s in text.split(",") if s.strip()]
    for i, item in enumerate(items, start=1):
        q, _, a = item.partition(":") if ":" in item.split("=", 1)[0] else ("", "", item)
        number = int(q) if q else i
        a, _, named = a.partition("=")
        if a.lower() not in ("y", "n", "yes", "no"):
            raise ValueError(f"answer {item!r}: use y, n or n=ID")
        if named and a.lower().startswith("y"):
            raise ValueError(f"answer {item!r}: name a partner only beside a no")
        if not 1 <= number <= n:
            raise ValueError(f"answer {item!r}: there are questions 1 to {n}")
        out[number] = (a.lower().startswith("y"), named.strip() or None)
    return out


rows = questions.select("question", "left_id", "right_id").orderBy("question").collect()
given = parse(params["answers"], len(rows))
# a named partner is written with the right ids' own type
integral = isinstance(questions.schema["right_id"].dataType, IntegralType)
named = {q: p for q, (_, p) in given.items() if p is not None}
if integral and (bad := [p for p in named.values() if not p.lstrip("-").isdigit()]):
    raise ValueError(f"named partner(s) {', '.join(bad)}: the right ids are integers")
answered = [(r["left_id"], r["right_id"], given[r["question"]][0]) for r in rows if r["question"] in given]
answered += [
    (r["left_id"], int(named[r["question"]]) if integral else named[r["question"]], True)
    for r in rows
    if r["question"] in named
]
if answered:
    schema = questions.select("left_id", "right_id").schema.add("match", "boolean")
    answers = spark.createDataFrame(answered, schema)
    location = f"{params['output'].rstrip('/')}/answers"
    answers.write.format("delta").mode("append").save(location)
    logging.getLogger("notebook").info(
        "%d answers (%d yes) appended to %s; next: python jobs/link.py ... --answers %s",
        len(answered),
        sum(a[2] for a in answered),
        location,
        location,
    )
