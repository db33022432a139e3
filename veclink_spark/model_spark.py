"""A fitted model on Spark: save and load it, translate tables, link new rows, merge two indexes.

Every function here runs on the driver and leaves the vector work to executors (``mapInArrow`` with the
model's arrays, a few MB, shipped in the function's closure). Inputs are validated before anything is
written (:func:`veclink_spark.inputs.load_tables`), and each output is one Delta write (a failed run
leaves the previous version of the table as it was).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .backends.spark import SparkBackend
from .constants import ID, IS_SEED, LEFT_ID, PRECISION_ESTIMATE, RIGHT_ID, TABLE_LINKS, VECTOR
from .engine import vote_round
from .errors import InputError
from .inputs import load_tables
from .model import LinkModel, links_of_new, other_side
from .session import get_or_create_session
from .stages import centre as centre_stage
from .stages.signatures import map_vectors
from .store import RunStore, run_id_or_new
from .trust import assess_new_links, checked_min_precision

log = logging.getLogger(__name__)

#: The saved model's files: the JSON written last (its presence marks a complete model), the arrays.
MODEL_JSON = "model.json"
TABLE_ARRAYS = "arrays"
TABLE_MERGED = "merged"
#: The run id under which a model's arrays are stored (one model per folder).
_MODEL_ROWS = "model"


def save_model(
    model: LinkModel, path: str, spark: SparkSession | None = None, links_location: str | None = None
) -> str:
    """Write ``model`` under ``path``: the Delta table ``arrays``, then ``model.json``.

    The links go with the model: to ``path/links`` when the model holds a links DataFrame, or by
    reference (``links_location``: a run's ``links`` table, read back filtered on the run id).
    Returns ``path``.
    """
    spark = spark or get_or_create_session()
    store = RunStore(spark, path)
    rows = model.array_rows()
    store.replace_run(
        TABLE_ARRAYS, spark.createDataFrame(rows, "name string, row int, values array<double>"), _MODEL_ROWS
    )
    meta = model.to_json()
    if links_location is None and isinstance(model.links, DataFrame):
        store.replace_run(TABLE_LINKS, model.links.drop("run_id"), _MODEL_ROWS)
        meta["links"] = {"location": store.path(TABLE_LINKS), "run_id": _MODEL_ROWS}
    elif links_location is not None:
        meta["links"] = {"location": links_location, "run_id": model.info.get("run_id")}
    store.write_json(MODEL_JSON, meta)
    log.info("model of run %s saved to %s", model.info.get("run_id"), path)
    return path


def load_model(path: str, spark: SparkSession | None = None) -> LinkModel:
    """Read a model saved by :func:`save_model`.

    Raises:
        InputError: there is no complete model at ``path``, or it is not readable as one.
    """
    spark = spark or get_or_create_session()
    store = RunStore(spark, path)
    meta = store.read_json(MODEL_JSON)
    if meta is None or not store.exists(TABLE_ARRAYS):
        raise InputError(
            f"no fitted model at {path!r} (expected {MODEL_JSON} and the Delta table {TABLE_ARRAYS}); "
            "a link run writes its model under <output>/model"
        )
    arrays: pd.DataFrame = (
        store.read_run(TABLE_ARRAYS, _MODEL_ROWS).select("name", "row", "values").toPandas()
    )
    links = None
    where = meta.get("links")
    if where:
        links = (
            spark.read.format("delta")
            .load(where["location"])
            .where(F.col("run_id") == F.lit(where["run_id"]))
        )
    return LinkModel.from_parts(meta, arrays, links)


def translate(
    model: LinkModel, df: DataFrame, side: str = "left", id_col: str = "id", vector_col: str = "vector"
) -> DataFrame:
    """``df``'s vectors (a table of ``side``'s model) mapped into the other model's space: a DataFrame
    (id, vector array<float>) computed on executors. The table is validated first (one aggregate)."""
    spark = df.sparkSession
    table, _ = _load(spark, model, {side: (df, id_col, vector_col)}, {side: side})[side]
    return _translated(model, table, side)


def _translated(model: LinkModel, table: DataFrame, side: str) -> DataFrame:
    arrays = replace(model, links=None, info={})  # what the executors need: no DataFrame in the closure
    return map_vectors(table, lambda ids, x: arrays.translate_arrays(x, side), element="float")


def _load(
    spark: SparkSession,
    model: LinkModel,
    tables: dict[str, tuple[str | DataFrame, str, str]],
    sides: dict[str, str],
) -> dict[str, tuple[DataFrame, int]]:
    """Validate and standardise tables (role -> side), checking each against the model's dimension.
    Returns role -> (table, rows)."""
    loaded = load_tables(spark, tables)
    problems = []
    for role, (_, _, dim) in loaded.items():
        want = model.dim_left if sides[role] == "left" else model.dim_right
        if dim != want:
            problems.append(
                f"{role}: vectors have {dim} dimensions; the model's {sides[role]} side has {want}"
            )
    if problems:
        raise InputError("; ".join(problems))
    return {role: (df, n) for role, (df, n, _) in loaded.items()}


@dataclass
class NewLinks:
    """What :func:`link_new` produced: the new links (read back from Delta) and the summary."""

    run_id: str
    links: DataFrame
    summary: dict[str, Any]


def link_new(
    model: LinkModel,
    new: str | DataFrame,
    output: str,
    side: str = "left",
    against: str | DataFrame | None = None,
    existing: str | DataFrame | None = None,
    run_id: str | None = None,
    id_col: str = "id",
    vector_col: str = "vector",
    spark: SparkSession | None = None,
    min_precision: float | None = None,
) -> NewLinks:
    """Link rows of ``side`` that arrived after the fit (``new``) against the other side's table.

    A new row must win its pair as the run's rows did: a mutual best match (by
    ``engine.POLISH_MIN_VOTE_FRACTION`` of the model's bagged maps) among all rows, so the table of
    ``side`` the model was fitted on (``existing``) competes too; pairs touching a link of the model are
    left out, and only links of new rows are kept. ``against`` and ``existing`` default to the tables of
    the run that fitted the model.
    One refinement-sized pass over the tables (each row meets the rows of its ``scale.probes`` nearest
    cells). Each new link gets ``precision_estimate``, estimated on these tables
    (:func:`veclink_spark.trust.assess_new_links`: on the whole tables when they fit in
    ``scale.fit_rows``, else on regions around new links); ``min_precision`` (default: the run's
    ``links.min_precision``) keeps the new links estimated at least that precise. Writes ``links``
    and ``votes`` under ``output`` (rows tagged with the run id) and ``new_rows/<run_id>.json``.

    Raises:
        InputError: a table is missing or invalid, its dimension is not the model's side's, new ids are
            already in the existing table, or no table is known for ``against`` / ``existing``.
    """
    if side not in ("left", "right"):
        raise InputError(f"side must be 'left' or 'right', got {side!r}")
    min_precision = checked_min_precision(min_precision)
    spark = spark or get_or_create_session()
    t0 = time.time()
    run_id = run_id_or_new(run_id, "new")
    other = other_side(side)
    against = against if against is not None else model.info.get(f"{other}_table")
    existing = existing if existing is not None else model.info.get(f"{side}_table")
    if against is None or existing is None:
        raise InputError(
            f"the model does not name its {side} and {other} tables: give the table of the other side "
            "(against) and the table the new rows join (existing)"
        )
    tables = _load(
        spark,
        model,
        {
            "new": (new, id_col, vector_col),
            "existing": (existing, id_col, vector_col),
            "against": (against, id_col, vector_col),
        },
        {"new": side, "existing": side, "against": other},
    )
    (new_df, n_new), (old_df, n_old), (against_df, n_against) = (
        tables["new"],
        tables["existing"],
        tables["against"],
    )
    clash = [r[0] for r in new_df.select(ID).join(old_df.select(ID), ID).limit(5).collect()]
    if clash:
        raise InputError(
            f"new {side} rows reuse ids of the table the model was fitted on (e.g. {clash}); new rows "
            "need new ids"
        )
    new_ids = set(r[0] for r in new_df.select(ID).collect())
    side_df = old_df.unionByName(new_df)
    linked: pd.DataFrame = (
        model.links.select(
            LEFT_ID,
            RIGHT_ID,
            F.col(IS_SEED) if IS_SEED in model.links.columns else F.lit(False).alias(IS_SEED),
        ).toPandas()
        if model.links is not None
        else pd.DataFrame({LEFT_ID: [], RIGHT_ID: [], IS_SEED: []})
    )
    new_mean = model.left_mean if side == "left" else model.right_mean
    against_mean = model.right_mean if side == "left" else model.left_mean
    if new_mean is not None and against_mean is not None:
        side_df = centre_stage.centred(side_df, new_mean)
        against_df = centre_stage.centred(against_df, against_mean)
    side_df, against_df = side_df.persist(), against_df.persist()
    store = RunStore(spark, output)
    try:
        lt, rt = (side_df, against_df) if side == "left" else (against_df, side_df)
        n_side = n_old + n_new
        nl, nr = (n_side, n_against) if side == "left" else (n_against, n_side)
        cfg = model.search_config()
        backend = SparkBackend(spark, lt, rt, store, run_id, cfg, nl, nr, model.dim_left, model.dim_right)
        found, record = vote_round(
            backend,
            cfg,
            model.bag_maps,
            model.cells,
            linked[LEFT_ID].to_numpy(),
            linked[RIGHT_ID].to_numpy(),
        )
        found = links_of_new(found, LEFT_ID if side == "left" else RIGHT_ID, new_ids)
        fitted = _links_within(spark, linked, lt, rt)
        found, facts = assess_new_links(
            backend, fitted, found, (side, np.asarray(sorted(new_ids))), model.vote(), cfg, min_precision
        )
        store.replace_run(TABLE_LINKS, backend.links_frame(found), run_id)
    finally:
        side_df.unpersist()
        against_df.unpersist()
    summary = model.new_rows_summary(n_new, n_against, side, found, record)
    summary.update(facts)
    summary.update(run_id=run_id, existing_rows=n_old, seconds=round(time.time() - t0, 2))
    store.write_json(f"new_rows/{run_id}.json", summary)
    log.info(
        "new rows %s: %d %s rows (beside %d) against %d, %d links (mean probability %s) in %.1f s",
        run_id,
        n_new,
        side,
        n_old,
        n_against,
        summary["n_links"],
        summary["mean_probability"],
        summary["seconds"],
    )
    return NewLinks(run_id, store.read_run(TABLE_LINKS, run_id), summary)


def _links_within(
    spark: SparkSession, linked: pd.DataFrame, left: DataFrame, right: DataFrame
) -> dict[str, Any]:
    """The model's links (``linked``: left_id, right_id, is_seed) whose two rows are in the tables
    ``left`` and ``right`` (a table given in place of the run's may lack some), as arrays. The ids
    alone are joined, so only they move."""
    if not len(linked):
        return {k: linked[k].to_numpy() for k in (LEFT_ID, RIGHT_ID, IS_SEED)}
    kinds = (left.schema[ID].dataType.simpleString(), right.schema[ID].dataType.simpleString())
    pairs = spark.createDataFrame(
        linked[[LEFT_ID, RIGHT_ID, IS_SEED]],
        f"{LEFT_ID} {kinds[0]}, {RIGHT_ID} {kinds[1]}, {IS_SEED} boolean",
    )
    within: pd.DataFrame = (
        pairs.join(left.select(F.col(ID).alias(LEFT_ID)), LEFT_ID, "left_semi")
        .join(right.select(F.col(ID).alias(RIGHT_ID)), RIGHT_ID, "left_semi")
        .toPandas()
    )
    return {
        LEFT_ID: within[LEFT_ID].to_numpy(),
        RIGHT_ID: within[RIGHT_ID].to_numpy(),
        IS_SEED: within[IS_SEED].to_numpy(bool),
    }


def merge(
    model: LinkModel,
    left: str | DataFrame,
    right: str | DataFrame,
    output: str,
    into: str = "right",
    id_col: str = "id",
    vector_col: str = "vector",
    spark: SparkSession | None = None,
    min_precision: float = 0.0,
) -> DataFrame:
    """One index in ``into``'s model space from the two tables and the model's links.

    Rows: every row of ``into``'s table as it is (unit vectors), with ``linked_id``, ``probability``
    and ``precision_estimate`` when the model links it; every row of the other table that has no
    link, translated (:meth:`LinkModel.translate_arrays`). A linked pair is one row. Columns:
    ``source`` ('left' or 'right'), ``source_id`` and ``linked_id`` (ids as strings: the two tables'
    id types may differ), ``probability`` and ``precision_estimate`` (null when unlinked;
    ``precision_estimate`` null for a seed), ``vector`` array<float>. ``min_precision``: only the
    links whose ``precision_estimate`` is at least it (and the seeds) merge their two rows; the rows
    of the others stay apart. Written as one Delta table at ``output/merged`` (replaced as a whole);
    returns it read back.

    Raises:
        InputError: a table is missing or invalid, the model holds no links, ``into`` is not a side, or
            ``min_precision`` is set and the model's links have no ``precision_estimate``.
    """
    if into not in ("left", "right"):
        raise InputError(f"into must be 'left' or 'right', got {into!r}")
    min_precision = checked_min_precision(min_precision) or 0.0
    if model.links is None:
        raise InputError("the model holds no links (load it from a run's output or a saved model folder)")
    model_links = model.links
    if PRECISION_ESTIMATE not in model_links.columns:
        if min_precision > 0:
            raise InputError("the model's links have no precision_estimate: min_precision cannot cut them")
        model_links = model_links.withColumn(PRECISION_ESTIMATE, F.lit(None).cast("double"))
    if min_precision > 0:
        model_links = model_links.where(F.col(IS_SEED) | (F.col(PRECISION_ESTIMATE) >= float(min_precision)))
    spark = spark or get_or_create_session()
    other = other_side(into)
    tables = _load(
        spark,
        model,
        {"left": (left, id_col, vector_col), "right": (right, id_col, vector_col)},
        {"left": "left", "right": "right"},
    )
    own_key, other_key = (LEFT_ID, RIGHT_ID) if into == "left" else (RIGHT_ID, LEFT_ID)
    links = model_links.select(
        F.col(own_key).alias(ID),
        F.col(other_key).cast("string").alias("linked_id"),
        "probability",
        PRECISION_ESTIMATE,
    )
    kept = (
        tables[into][0]
        .join(links, ID, "left")
        .select(
            F.lit(into).alias("source"),
            F.col(ID).cast("string").alias("source_id"),
            "linked_id",
            F.col("probability").cast("double").alias("probability"),
            F.col(PRECISION_ESTIMATE).cast("double").alias(PRECISION_ESTIMATE),
            F.col(VECTOR).cast("array<float>").alias(VECTOR),
        )
    )
    linked_other = model_links.select(F.col(other_key).alias(ID))
    unlinked = tables[other][0].join(linked_other, ID, "left_anti")
    moved = _translated(model, unlinked, other).select(
        F.lit(other).alias("source"),
        F.col(ID).cast("string").alias("source_id"),
        F.lit(None).cast("string").alias("linked_id"),
        F.lit(None).cast("double").alias("probability"),
        F.lit(None).cast("double").alias(PRECISION_ESTIMATE),
        F.col(VECTOR),
    )
    store = RunStore(spark, output)
    location = store.path(TABLE_MERGED)
    merged = kept.unionByName(moved)
    merged.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(location)
    log.info(
        "merged index written to %s (%s space)%s",
        location,
        into,
        f", links at precision_estimate {min_precision} or more (and the seeds) merged"
        if min_precision > 0
        else "",
    )
    return spark.read.format("delta").load(location)
