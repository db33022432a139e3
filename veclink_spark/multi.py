"""More than two models: link every pair of several embedding tables of one kind of object, and use the
triangles as evidence.

``link_many`` runs the linker on each pair of tables (each pair a run of its own under
``<output>/<a>__<b>``; re-running with the same run id resumes or finds each pair), then checks every link of
every pair against the other tables: a link a-b is *confirmed* by a third table c when some row of c
is linked to both its ends (links a-c and b-c). A link that another model confirms is far more often
right (benchmarks/use_cases: precision 0.973 -> 0.999 on WordNet); a user who needs precision keeps the
confirmed links, one who needs recall keeps them all.

Written: the pairs' runs as by :class:`~veclink_spark.linker.Linker`, and one Delta table
``<output>/confirmed`` with every pair's links (``left_table``, ``right_table``, ``left_id``,
``right_id`` as strings since the tables' id types may differ, ``probability``, ``is_seed``,
``confirmed_by``: the tables that confirm the link, ``confirmed``, and ``run_id``), plus
``<output>/summary.json`` (each pair's run, verdict, links and confirmed links).

The check is a join on the shared table's ids (links are one-to-one, so each triangle join is linear
in the links); :func:`confirm_arrays` is its in-process twin for pandas frames.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .config import LinkConfig
from .errors import InputError
from .inputs import read_table
from .linker import Linker, LinkResult
from .session import get_or_create_session
from .store import RunStore, run_id_or_new

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
CONFIRMED_COLUMNS = (
    "left_table",
    "right_table",
    "left_id",
    "right_id",
    "probability",
    "is_seed",
    "confirmed_by",
    "confirmed",
)


@dataclass
class ManyResult:
    """What ``link_many`` produced: each pair's run, the confirmed-links table, the summary."""

    pairs: dict[tuple[str, str], LinkResult]
    confirmed: DataFrame
    summary: dict[str, Any]


def table_pairs(names: list[str]) -> list[tuple[str, str]]:
    """Every pair of tables once, in the order given (a before b when a comes first)."""
    return list(itertools.combinations(names, 2))


def check_names(names: list[str]) -> None:
    """Table names: at least three (two tables are one run of ``jobs/link.py``), distinct, letters,
    digits and ``_`` (they name folders and seed columns), no ``__`` (it separates a pair's names)."""
    if len(names) < 3:
        raise InputError(
            f"link_many needs at least three tables, got {len(names)}: link two with jobs/link.py"
        )
    if len(set(names)) != len(names):
        raise InputError(f"table names must be distinct, got {names}")
    bad = [n for n in names if not _NAME.match(n) or "__" in n]
    if bad:
        raise InputError(f"table names must be letters, digits and single '_' (start with a letter): {bad}")


def link_many(
    tables: dict[str, str],
    seeds: str,
    output: str,
    config: LinkConfig | None = None,
    spark: SparkSession | None = None,
    run_id: str | None = None,
) -> ManyResult:
    """Link every pair of ``tables`` and confirm each link by the other tables.

    Args:
        tables: name -> embedding table (Delta or Parquet path, or a catalog table), three or more.
        seeds: a table with one id column per table name, one row per known object; an object may be
            missing (null) in some tables: each pair is seeded by the rows known in both.
        output: folder (or URI); each pair's run goes to ``<output>/<a>__<b>``.
        config: the linker's configuration, the same for every pair (``io`` names the tables' id and
            vector columns; the seeds' columns are the table names).
        run_id: re-using a run id resumes it (each pair's run is ``<run_id>-<a>__<b>``: a finished pair
            is found, an interrupted one resumed); default: a new id.

    Raises:
        InputError: fewer than three tables, bad names, or the seeds table lacks a table's column; raised
            before any pair is linked.
    """
    names = list(tables)
    check_names(names)
    cfg = config or LinkConfig()
    spark = spark or get_or_create_session()
    seed_df = read_table(spark, seeds, "seeds")
    missing = [n for n in names if n not in seed_df.columns]
    if missing:
        raise InputError(
            f"the seeds table {seeds!r} has no column for the tables {missing} (it has {seed_df.columns})"
        )
    run_id = run_id_or_new(run_id, "many")
    base = output.rstrip("/")
    results: dict[tuple[str, str], LinkResult] = {}
    t0 = time.time()
    pairs = table_pairs(names)
    for i, (a, b) in enumerate(pairs, 1):
        view = f"veclink_seeds_{a}__{b}"
        pair_seeds = seed_df.select(
            F.col(a).alias(cfg.io.seeds_left), F.col(b).alias(cfg.io.seeds_right)
        ).dropna()
        pair_seeds.createOrReplaceTempView(view)  # the session's own view: nothing is written for it
        log.info("pair %d of %d: %s - %s", i, len(pairs), a, b)
        try:
            results[(a, b)] = Linker(cfg, spark).link(
                tables[a], tables[b], view, f"{base}/{a}__{b}", f"{run_id}-{a}__{b}"
            )
        finally:
            spark.catalog.dropTempView(view)
    store = RunStore(spark, base)
    store.replace_run("confirmed", confirm({pair: r.links for pair, r in results.items()}), run_id)
    confirmed = store.read_run("confirmed", run_id)
    counts = {
        (r["left_table"], r["right_table"]): (r["links"], r["confirmed"])
        for r in confirmed.where(~F.col("is_seed"))
        .groupBy("left_table", "right_table")
        .agg(F.count("*").alias("links"), F.sum(F.col("confirmed").cast("int")).alias("confirmed"))
        .collect()
    }
    summary = {
        "run_id": run_id,
        "tables": names,
        "seconds": round(time.time() - t0, 1),
        "pairs": [
            {
                "left": a,
                "right": b,
                "run_id": r.run_id,
                "verdict": r.summary["verdict"],
                "n_links": counts.get((a, b), (0, 0))[0],
                "n_confirmed": int(counts.get((a, b), (0, 0))[1] or 0),
            }
            for (a, b), r in results.items()
        ],
    }
    store.write_json("summary.json", summary)
    return ManyResult(results, confirmed, summary)


def _edges(links: dict[tuple[str, str], DataFrame], x: str, y: str) -> DataFrame:
    """Links between tables x and y as (x, y) string ids, whichever way round the pair was linked."""
    if (x, y) in links:
        df, cx, cy = links[(x, y)], "left_id", "right_id"
    else:
        df, cx, cy = links[(y, x)], "right_id", "left_id"
    return df.select(F.col(cx).cast("string").alias("x_id"), F.col(cy).cast("string").alias("y_id"))


def confirm(links: dict[tuple[str, str], DataFrame]) -> DataFrame:
    """Every pair's links with the tables that confirm them (see the module doc); Spark joins."""
    names = sorted({n for pair in links for n in pair})
    out = None
    for a, b in links:
        base = links[(a, b)].select(
            F.lit(a).alias("left_table"),
            F.lit(b).alias("right_table"),
            F.col("left_id").cast("string").alias("left_id"),
            F.col("right_id").cast("string").alias("right_id"),
            F.col("probability").cast("double").alias("probability"),
            F.col("is_seed").cast("boolean").alias("is_seed"),
        )
        tri = None
        for c in (n for n in names if n not in (a, b)):
            ac = _edges(links, a, c).withColumnRenamed("x_id", "left_id").withColumnRenamed("y_id", "c_id")
            bc = _edges(links, b, c).withColumnRenamed("x_id", "right_id").withColumnRenamed("y_id", "c_id")
            part = ac.join(bc, "c_id").select("left_id", "right_id", F.lit(c).alias("by"))
            tri = part if tri is None else tri.unionByName(part)
        assert tri is not None  # check_names: at least three tables
        by = tri.groupBy("left_id", "right_id").agg(F.array_sort(F.collect_set("by")).alias("confirmed_by"))
        one = (
            base.join(by, ["left_id", "right_id"], "left")
            .withColumn("confirmed_by", F.coalesce("confirmed_by", F.array().cast("array<string>")))
            .withColumn("confirmed", F.size("confirmed_by") > 0)
            .select(*CONFIRMED_COLUMNS)
        )
        out = one if out is None else out.unionByName(one)
    assert out is not None
    return out


def confirm_arrays(links: dict[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """In-process twin of :func:`confirm` for pandas frames (columns left_id, right_id, probability,
    is_seed per pair); the same rows and columns."""
    names = sorted({n for pair in links for n in pair})

    def edges(x: str, y: str) -> pd.DataFrame:
        if (x, y) in links:
            df, cx, cy = links[(x, y)], "left_id", "right_id"
        else:
            df, cx, cy = links[(y, x)], "right_id", "left_id"
        return pd.DataFrame({"x_id": df[cx].astype(str).to_numpy(), "y_id": df[cy].astype(str).to_numpy()})

    frames = []
    for a, b in links:
        df = links[(a, b)]
        base = pd.DataFrame(
            {
                "left_table": a,
                "right_table": b,
                "left_id": df["left_id"].astype(str).to_numpy(),
                "right_id": df["right_id"].astype(str).to_numpy(),
                "probability": df["probability"].astype(float).to_numpy(),
                "is_seed": df["is_seed"].astype(bool).to_numpy(),
            }
        )
        by: dict[tuple[str, str], list[str]] = {}
        for c in (n for n in names if n not in (a, b)):
            ac = edges(a, c).rename(columns={"x_id": "left_id", "y_id": "c_id"})
            bc = edges(b, c).rename(columns={"x_id": "right_id", "y_id": "c_id"})
            for key in ac.merge(bc, on="c_id")[["left_id", "right_id"]].itertuples(index=False, name=None):
                by.setdefault(key, []).append(c)
        base["confirmed_by"] = [
            sorted(set(by.get(k, []))) for k in zip(base["left_id"], base["right_id"], strict=True)
        ]
        base["confirmed"] = base["confirmed_by"].map(len) > 0
        frames.append(base)
    return pd.concat(frames, ignore_index=True)[list(CONFIRMED_COLUMNS)]
