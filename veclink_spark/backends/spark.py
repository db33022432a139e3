"""The Spark backend of the round driver: executors do the vector work, Delta keeps every round.

Runs on the driver; it triggers the actions and the writes, the stages only describe DataFrames. Per
round it writes the ``votes`` slice (every pair proposed in the phase with its round and cumulative
votes) and, once the driver has promoted, the ``anchors`` slice (the full anchor/link set after the
round) and the round's commit marker (the driver state as JSON). Only small aggregates come back: the
anchors' vectors, the vote histogram, the candidates above the threshold, the partial cross-covariances.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..config import LinkConfig
from ..constants import ID, IS_SEED, LEFT_ID, PRECISION_ESTIMATE, RIGHT_ID, TABLE_ANCHORS, TABLE_VOTES, VECTOR
from ..kernels.blocking import cell_centroids
from ..kernels.centre import normalise_rows
from ..kernels.maps import CSLS_K, bag_limits, take_off_objective
from ..kernels.samples import rows_per_seed
from ..kernels.signatures import View, descriptor_sample_size, distribution_descriptors, view_column_means
from ..stages import candidates as cand_stage
from ..stages import distribution, evidence, mutual_nn, nearest, refine, sample, signatures
from ..state import Candidates, RoundVotes, RunState
from ..store import RunStore
from .base import (
    FIT_CELL_PROBES,
    HASH_KEYS,
    INIT_QUANTILES,
    INIT_SAMPLE,
    MAX_BLOCK_SIZE,
    Backend,
)
from .in_process import NumpyBackend

log = logging.getLogger(__name__)

#: ``scale.fit_on`` auto fits in the driver's process up to this many rows on a side: six times the
#: default 8,000-row sample (the benchmarks fit at most 20,000 in process). In process is much the
#: faster where both fit (1,300 rows a side, 29 rounds: 12.0 s against 417.6 s on executors, each Spark
#: round paying its stages' and Delta commits' fixed cost; ``benchmarks/fit_on.py``), so executors only
#: where the sample's rounds may not fit the driver. A choice, not a measured limit.
DRIVER_FIT_ROWS = 50_000

#: A round's map is fitted from the previous round's pairs (:meth:`SparkBackend.cross_covariance`).
#: Up to this many, the pairs are broadcast to the tables' tasks (a few hundred MB at most) instead of
#: being joined with each whole table in a shuffle (:func:`veclink_spark.stages.refine.
#: cross_covariance_parts`). A bound on what a task's memory takes, not a measured optimum.
BROADCAST_PAIRS = 5_000_000


def fit_on_executors(fit_on: str, n_left: int, n_right: int) -> bool:
    """Whether a fit sample of ``n_left`` and ``n_right`` rows runs its rounds on executors: as
    ``scale.fit_on`` says, and with auto when it has more than :data:`DRIVER_FIT_ROWS` rows on a side."""
    if fit_on == "auto":
        return max(n_left, n_right) > DRIVER_FIT_ROWS
    return fit_on == "executors"


class SparkBackend:
    """Backend of :func:`veclink_spark.engine.run_rounds` over two Spark DataFrames (id, vector).

    Args:
        spark: the session (used only to build small DataFrames of ids on the driver).
        left, right: standardised embedding tables (columns id, vector).
        store: the run store; run_id: the run.
        n_left, n_right, dim_left, dim_right: sizes measured by input validation.
    """

    def __init__(
        self,
        spark: SparkSession,
        left: DataFrame,
        right: DataFrame,
        store: RunStore,
        run_id: str,
        cfg: LinkConfig,
        n_left: int,
        n_right: int,
        dim_left: int,
        dim_right: int,
    ):
        self.spark = spark
        self.left = left.select(ID, VECTOR)
        self.right = right.select(ID, VECTOR)
        self.store = store
        self.run_id = run_id
        self.cfg = cfg
        self.n_left, self.n_right = n_left, n_right
        self.dim_left, self.dim_right = dim_left, dim_right
        self._eligible: DataFrame | None = None
        self._anchors: dict[str, np.ndarray] | None = None
        self._tag: str | None = None
        self._held: list[DataFrame] = []  # cached by fit_backend, unpersisted by release
        # The right rows of the last refine round, keyed by what they depend on (_right_signatures).
        self._right_sigs: tuple[tuple[str, int, int], DataFrame, bool] | None = None
        self._left_type = self.left.schema[ID].dataType.simpleString()
        self._right_type = self.right.schema[ID].dataType.simpleString()

    def label_round(self, round_no: int, phase: str) -> None:
        """Tag the jobs of the round (``SparkSession.addTag``: shown with each job in the Spark UI and
        usable with ``interruptTag``; a DataFrame-API call, so it also works on Spark Connect)."""
        tag = f"veclink-{self.run_id}-round-{round_no}-{phase}".replace(",", "_")
        if self._tag is not None:
            self.spark.removeTag(self._tag)
        self.spark.addTag(tag)
        self._tag = tag

    def clear_label(self) -> None:
        """Remove the last round's tag (a later job of the caller's thread is not the run's)."""
        if self._tag is not None:
            self.spark.removeTag(self._tag)
            self._tag = None

    def fit_backend(
        self, left_ids: np.ndarray, left: np.ndarray, right_ids: np.ndarray, right: np.ndarray, name: str
    ) -> Backend:
        """In the driver's process (:class:`NumpyBackend` over ``left`` and ``right``), unless
        :func:`fit_on_executors`: then a Spark backend over the same rows of this one's tables (the
        vectors stay on executors: the ids are joined to the tables, and the rows cached until
        :meth:`release`), whose rounds are committed under run id ``<run id>-<name>`` in this run's store,
        so that a fit resumed after a failure restarts after its last committed round."""
        if not fit_on_executors(self.cfg.scale.fit_on, len(left_ids), len(right_ids)):
            return NumpyBackend(left_ids, left, right_ids, right, self.cfg, centred=True)
        rows = []
        for df, ids, kind in (
            (self.left, left_ids, self._left_type),
            (self.right, right_ids, self._right_type),
        ):
            keep = self.spark.createDataFrame(
                pd.DataFrame({ID: list(np.asarray(ids).tolist())}), f"{ID} {kind}"
            )
            rows.append(df.join(F.broadcast(keep), ID).persist())
        run_id = f"{self.run_id}-{name}"
        log.info(
            "fit on executors: %d left and %d right rows, rounds committed as run %s",
            len(left_ids),
            len(right_ids),
            run_id,
        )
        fitted = SparkBackend(
            self.spark,
            rows[0],
            rows[1],
            self.store,
            run_id,
            self.cfg,
            len(left_ids),
            len(right_ids),
            self.dim_left,
            self.dim_right,
        )
        fitted._held = rows
        return fitted

    def release(self) -> None:
        """Unpersist the rows :meth:`fit_backend` cached and the last round's eligible pairs, and remove
        the last round's tag."""
        for df in self._held:
            df.unpersist()
        self._held = []
        if self._eligible is not None:
            self._eligible.unpersist()
            self._eligible = None
        self._drop_right_signatures()
        self.clear_label()

    def _right_signatures(self, n_maps: int, centroids: np.ndarray, probes: int) -> DataFrame:
        """The right table's rows of a refine round, keyed by their cells (unmapped: they depend only
        on the cells, the probes and the number of maps, not on the maps).

        An extension's settling rounds search the same cells round after round: the right side's
        signatures are the same each time, and computing them (every right row's distances to every
        cell, in float64) took 46 s of task time of a 110-125 s round at a million rows a side (event
        log). They are cached from the second round that asks for the same ones and reused until
        other ones are asked for; a round whose right rows are asked for once (the fit's rounds, whose
        cells move, or the extension's last search in more cells) does not cache them."""
        key = (
            hashlib.sha1(np.ascontiguousarray(centroids, dtype=np.float64).tobytes()).hexdigest(),
            probes,
            n_maps,
        )
        if self._right_sigs is not None and self._right_sigs[0] == key:
            _, sigs, cached = self._right_sigs
            if not cached:
                sigs = sigs.persist()
                self._right_sigs = (key, sigs, True)
            return sigs
        self._drop_right_signatures()
        eye = np.zeros((n_maps, 1, 1))  # the right side reads only how many maps there are
        sigs = signatures.refine_signatures(self.right, "right", eye, centroids, probes=probes)
        self._right_sigs = (key, sigs, False)
        return sigs

    def _drop_right_signatures(self) -> None:
        if self._right_sigs is not None and self._right_sigs[2]:
            self._right_sigs[1].unpersist()
        self._right_sigs = None

    def links_frame(self, links: dict[str, np.ndarray] | pd.DataFrame) -> DataFrame:
        """A link table built on the driver (a run's anchors, a new-rows run's links) as the DataFrame of
        the ``links`` output table, ids typed like the tables' ids."""
        schema = (
            f"{LEFT_ID} {self._left_type}, {RIGHT_ID} {self._right_type}, probability double, "
            "votes long, views long, round int, is_seed boolean, precision_estimate double, similarity double"
        )
        cols = [LEFT_ID, RIGHT_ID, "probability", "votes", "views", "round", "is_seed"]
        n = len(links[LEFT_ID])
        data = {c: list(np.asarray(links[c]).tolist()) for c in cols}
        # null where nothing was estimated or scored: seeds, and the links of a new-rows run
        for col in (PRECISION_ESTIMATE, "similarity"):
            values = np.asarray(links[col], float) if col in links else np.full(n, np.nan)
            data[col] = [None if not np.isfinite(v) else float(v) for v in values]
            cols.append(col)
        pdf = pd.DataFrame(data, columns=cols)
        return self.spark.createDataFrame(pdf, schema)

    def duplicates_frame(self, rows: pd.DataFrame) -> DataFrame:
        """The ``duplicates`` output table from :meth:`FitRows.duplicate_rows` (side, id, kept_id): ids
        typed like the tables' ids when both tables' ids have one type, else as strings."""
        kind = self._left_type if self._left_type == self._right_type else "string"
        cols = ["side", ID, "kept_id"]
        pdf = pd.DataFrame({c: list(rows[c].tolist()) for c in cols}, columns=cols)
        if kind == "string":
            pdf[[ID, "kept_id"]] = pdf[[ID, "kept_id"]].astype(str)
        return self.spark.createDataFrame(pdf, f"side string, {ID} {kind}, kept_id {kind}")

    def questions_frame(self, questions: pd.DataFrame) -> DataFrame:
        """The ``questions`` output table (question, left_id, right_id, chance_right,
        precision_estimate, why), ids typed like the tables' ids."""
        cols = ["question", LEFT_ID, RIGHT_ID, "chance_right", PRECISION_ESTIMATE, "why"]
        pdf = pd.DataFrame({c: list(questions[c].tolist()) for c in cols}, columns=cols)
        schema = (
            f"question long, {LEFT_ID} {self._left_type}, {RIGHT_ID} {self._right_type}, "
            f"chance_right double, {PRECISION_ESTIMATE} double, why string"
        )
        return self.spark.createDataFrame(pdf, schema)

    # -- small DataFrames of ids built on the driver ---------------------------------------------
    def _pairs_df(
        self, left_ids: np.ndarray, right_ids: np.ndarray, extra: dict[str, Any] | None = None
    ) -> DataFrame:
        cols = {
            "_i": np.arange(len(left_ids), dtype=np.int64),
            LEFT_ID: list(np.asarray(left_ids).tolist()),
            RIGHT_ID: list(np.asarray(right_ids).tolist()),
        }
        schema = f"_i long, {LEFT_ID} {self._left_type}, {RIGHT_ID} {self._right_type}"
        if extra:
            for name, (values, ddl) in extra.items():
                cols[name] = values
                schema += f", {name} {ddl}"
        return self.spark.createDataFrame(pd.DataFrame(cols), schema)

    # -- Backend protocol ------------------------------------------------------------------------
    def anchor_vectors(self, left_ids: np.ndarray, right_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # as the in-process backend: no ids, no vectors (np.stack needs one), and no pass over that table
        x = self._rows_of(self.left, self._left_type, left_ids, "left") if len(left_ids) else None
        y = self._rows_of(self.right, self._right_type, right_ids, "right") if len(right_ids) else None
        return (
            np.zeros((0, self.dim_left)) if x is None else x,
            np.zeros((0, self.dim_right)) if y is None else y,
        )

    def _rows_of(self, df: DataFrame, kind: str, ids: np.ndarray, side: str) -> np.ndarray:
        """The unit vectors of rows ``ids`` of table ``df`` (ids of Spark type ``kind``), in that order.

        The distinct ids (at most tens of thousands: seeds, a fit's links, the estimate's regions) are
        broadcast and the table is filtered where it lies. A join of a driver-built frame with the
        table is planned as a sort-merge join, which shuffles the whole table (measured at 3M rows a
        side: 8.9 GB written to fetch a fit sample's 8,000 rows)."""
        ids = np.asarray(ids)
        unique = pd.unique(ids)
        keys = self.spark.createDataFrame(
            pd.DataFrame({ID: list(np.asarray(unique).tolist())}), f"{ID} {kind}"
        )
        rows: pd.DataFrame = df.join(F.broadcast(keys), ID).select(ID, VECTOR).toPandas()
        at = pd.Index(rows[ID]).get_indexer(pd.Index(ids))
        if len(rows) != len(unique) or (at < 0).any():
            raise RuntimeError(f"{side} vectors: expected {len(unique)} rows, found {len(rows)}")
        vectors = np.stack(rows[VECTOR].to_numpy())[at] if len(rows) else np.zeros((0, 0))
        return normalise_rows(vectors.astype(np.float64))

    def geh_votes(
        self,
        round_no: int,
        vec_left: np.ndarray,
        vec_right: np.ndarray,
        views: list[View],
        exclude_left: np.ndarray,
        exclude_right: np.ndarray,
        phase_start: bool,
    ) -> RoundVotes:
        centering = self.cfg.signatures.centering
        sigs = []
        for side, df, anchors in (("left", self.left, vec_left), ("right", self.right, vec_right)):
            means = self._column_means(df, side, anchors, views) if centering == "anchor" else None
            sigs.append(
                signatures.geh_signatures(
                    df,
                    side,
                    anchors,
                    views,
                    probes=HASH_KEYS,
                    centering=centering,
                    column_means=means,
                ).persist()
            )
        ls, rs = sigs
        # Persisted: the mutual-NN stage reads the best matches twice (each side's best), and without it
        # the whole block search ran twice (measured at 100k rows a side: 35 s -> 16 s for this step).
        best = cand_stage.block_best_matches(ls, rs, MAX_BLOCK_SIZE).persist()
        try:
            sizes = cand_stage.block_sizes(ls, rs)
            return self._finish(round_no, best, sizes, len(views), exclude_left, exclude_right, phase_start)
        finally:
            best.unpersist()
            ls.unpersist()
            rs.unpersist()

    def _column_means(
        self, df: DataFrame, side: str, anchors: np.ndarray, views: list[View]
    ) -> list[np.ndarray]:
        """The ``anchor`` centring means of one side: per-batch kernel sums from the executors, added up
        here (one small row per batch and view)."""
        parts: pd.DataFrame = signatures.geh_kernel_sums(df, side, anchors, views).toPandas()
        width = max((len(v.anchors) for v in views), default=0)
        counts = np.zeros(len(views), dtype=np.int64)
        sums = np.zeros((len(views), width))
        for vi, n, total in zip(parts["view"], parts["n"], parts["total"], strict=True):
            counts[int(vi)] += int(n)
            t = np.asarray(total, dtype=np.float64)
            sums[int(vi), : len(t)] += t
        return view_column_means(counts, sums, views)

    def refine_votes(
        self,
        round_no: int,
        maps: np.ndarray,
        centroids: np.ndarray,
        exclude_left: np.ndarray,
        exclude_right: np.ndarray,
        phase_start: bool,
        keep: float = 1.0,
        salt: int = 0,
        probes: int = 1,
    ) -> RoundVotes:
        return self._mapped_votes(
            self.left,
            self.right,
            maps,
            centroids,
            round_no,
            exclude_left,
            exclude_right,
            phase_start,
            keep,
            salt,
            probes,
            crowded=True,
        )

    def distribution_votes(
        self,
        round_no: int,
        n_cells: int,
        cells_seed: int,
        exclude_left: np.ndarray,
        exclude_right: np.ndarray,
        phase_start: bool,
    ) -> RoundVotes:
        size = descriptor_sample_size(INIT_SAMPLE, self.n_left, self.n_right)
        lids, lsample = self._sample(self.left, size)
        rids, rsample = self._sample(self.right, size)
        dl = distribution.descriptors(self.left, lids, lsample, INIT_QUANTILES)
        dr = distribution.descriptors(self.right, rids, rsample, INIT_QUANTILES)
        right_desc = distribution_descriptors(rsample, rids, rsample, rids, INIT_QUANTILES)
        centroids = cell_centroids(right_desc, n_cells, cells_seed)
        eye = np.eye(right_desc.shape[1])[None, :, :]
        return self._mapped_votes(
            dl,
            dr,
            eye,
            centroids,
            round_no,
            exclude_left,
            exclude_right,
            phase_start,
            1.0,
            0,
            FIT_CELL_PROBES,
        )

    def _sample(self, df: DataFrame, size: int, salt: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(ids, unit vectors) of the table's ``size`` rows of smallest sample key (ties by id), in order."""
        keys = distribution.sample_keys(df, salt).orderBy(distribution.SAMPLE_KEY, ID).limit(int(size))
        rows: pd.DataFrame = (
            F.broadcast(keys).join(df, ID).orderBy(distribution.SAMPLE_KEY, ID).select(ID, VECTOR).toPandas()
        )
        return rows[ID].to_numpy(), normalise_rows(np.stack(rows[VECTOR].to_numpy()))

    def _mapped_votes(
        self,
        left: DataFrame,
        right: DataFrame,
        maps: np.ndarray,
        centroids: np.ndarray,
        round_no: int,
        exclude_left: np.ndarray,
        exclude_right: np.ndarray,
        phase_start: bool,
        keep: float,
        salt: int,
        probes: int,
        crowded: bool = False,
    ) -> RoundVotes:
        """CSLS mutual nearest neighbours of ``left`` mapped by each of ``maps`` and ``right``, blocked:
        one co-group of the two sides' rows per round (:func:`stages.candidates.csls_best`).
        ``crowded``: each row's match across its blocks by its largest r (the refine rounds); the
        distribution round keeps each block's own CSLS."""
        ls = signatures.refine_signatures(left, "left", maps, centroids, probes=probes)
        if right is self.right:
            rs = self._right_signatures(len(maps), centroids, probes)
        else:  # the distribution round's descriptors
            rs = signatures.refine_signatures(right, "right", maps, centroids, probes=probes)
        best = cand_stage.csls_best(ls, rs, CSLS_K, MAX_BLOCK_SIZE, keep, salt).persist()
        out = self._finish(
            round_no,
            best,
            cand_stage.best_block_sizes(best),
            len(maps),
            exclude_left,
            exclude_right,
            phase_start,
            rescore=True,
            crowded=crowded,
        )
        if keep < 1.0:
            # The take-off's progress measure (kernels.maps.take_off_objective), needed only in the dropout
            # rounds it paces (engine._adapt_keep): each side's mean r over its rows' best matches.
            means = best.agg(
                F.avg(F.when(F.col("dir") == "L", F.col("r"))).alias("l"),
                F.avg(F.when(F.col("dir") == "R", F.col("r"))).alias("r"),
            ).first()
            out.stats["objective"] = take_off_objective(
                None if means is None else means["l"], None if means is None else means["r"]
            )
        best.unpersist()
        return out

    def _finish(
        self,
        round_no: int,
        best: DataFrame,
        sizes_df: DataFrame,
        n_views: int,
        exclude_left: np.ndarray,
        exclude_right: np.ndarray,
        phase_start: bool,
        rescore: bool = False,
        crowded: bool = False,
    ) -> RoundVotes:
        mnn = mutual_nn.mutual_nearest_pairs(best, rescore=rescore, crowded=crowded)
        votes = evidence.round_votes(mnn)
        previous = None
        if not phase_start:
            previous = self.store.read_round(TABLE_VOTES, self.run_id, round_no - 1).select(
                LEFT_ID, RIGHT_ID, "cum_votes"
            )
        table = evidence.accumulate(votes, previous)
        self.store.write_round(TABLE_VOTES, table, self.run_id, round_no)
        stored = self.store.read_round(TABLE_VOTES, self.run_id, round_no).drop("run_id", "round")
        exclude = self._pairs_df(exclude_left, exclude_right)
        eligible = evidence.eligible(stored, exclude).persist()
        if self._eligible is not None:
            self._eligible.unpersist()
        self._eligible = eligible
        cells: pd.DataFrame = evidence.vote_cells(eligible).toPandas()
        size_pdf: pd.DataFrame = sizes_df.toPandas()
        sizes = size_pdf.iloc[0]
        stats = {
            "blocks": int(sizes["blocks"] or 0),
            "max_block": int(sizes["max_block"] or 0),
            "mean_block": float(sizes["mean_block"] or 0.0),
        }
        if stats["max_block"] > MAX_BLOCK_SIZE:
            log.warning(
                "round %d: largest block has %d vectors on one side; cut to MAX_BLOCK_SIZE=%d "
                "(veclink_spark.backends.base)",
                round_no,
                stats["max_block"],
                MAX_BLOCK_SIZE,
            )
        cell_arr = (
            cells[["round_votes", "cum_votes", "n"]].to_numpy(np.int64)
            if len(cells)
            else np.zeros((0, 3), dtype=np.int64)
        )
        return RoundVotes(n_views=n_views, cells=cell_arr, stats=stats)

    def cross_covariance(
        self,
        prev_round: int | None,
        n_bags: int,
        fraction: float,
        salt: int,
        fixed_left: np.ndarray,
        fixed_right: np.ndarray,
    ) -> np.ndarray:
        if prev_round is None:
            a = self._anchors
            if a is None:
                dl, dr = np.asarray([]), np.asarray([])
            else:
                dl, dr = a["left_id"][~a["is_seed"]], a["right_id"][~a["is_seed"]]
            pairs = self._pairs_df(dl, dr).drop("_i")
        else:
            stored = self.store.read_round(TABLE_VOTES, self.run_id, prev_round).drop("run_id", "round")
            exclude = self._pairs_df(fixed_left, fixed_right)
            pairs = evidence.eligible(stored, exclude).select(LEFT_ID, RIGHT_ID)
        limits = bag_limits(n_bags, fraction)
        key = F.concat_ws("|", F.col(LEFT_ID).cast("string"), F.col(RIGHT_ID).cast("string"))
        flags = F.array(
            *[
                F.crc32(F.concat_ws("|", key, F.lit(str(b)), F.lit(str(salt)))) < F.lit(limits[b])
                for b in range(n_bags)
            ]
        )
        seeds = self._pairs_df(fixed_left, fixed_right).select(
            LEFT_ID, RIGHT_ID, F.array(*[F.lit(True) for _ in range(n_bags)]).alias("bags")
        )
        dictionary = pairs.select(LEFT_ID, RIGHT_ID, flags.alias("bags")).unionByName(seeds)
        small = prev_round is None or dictionary.count() <= BROADCAST_PAIRS
        parts: pd.DataFrame = refine.cross_covariance_parts(
            dictionary,
            self.left,
            self.right,
            n_bags,
            self.dim_left,
            self.dim_right,
            partitions=2,
            broadcast=small,
        ).toPandas()
        out = np.zeros((n_bags, self.dim_left, self.dim_right))
        for bag, cross in zip(parts["bag"].to_numpy(), parts["cross"].to_numpy(), strict=False):
            out[int(bag)] += np.asarray(cross, dtype=np.float64).reshape(self.dim_left, self.dim_right)
        return out

    def candidates(self, round_no: int, min_round_votes: int, min_cum_votes: int) -> Candidates:
        assert self._eligible is not None  # set by the round's votes call; internal invariant
        rows: pd.DataFrame = (
            self._eligible.filter(
                (F.col("round_votes") >= min_round_votes) & (F.col("cum_votes") >= min_cum_votes)
            )
            .select(LEFT_ID, RIGHT_ID, "round_votes", "cum_votes", "sim")
            .toPandas()
        )
        return Candidates(
            rows[LEFT_ID].to_numpy(),
            rows[RIGHT_ID].to_numpy(),
            rows["round_votes"].to_numpy(np.int64),
            rows["cum_votes"].to_numpy(np.int64),
            rows["sim"].to_numpy(np.float64),
        )

    def proposed_similarity(self, round_no: int, left_ids: np.ndarray, right_ids: np.ndarray) -> np.ndarray:
        out = np.full(len(left_ids), np.nan)
        if not len(left_ids):
            return out
        pairs = self._pairs_df(left_ids, right_ids)
        votes = self.store.read_round(TABLE_VOTES, self.run_id, round_no).filter(F.col("round_votes") > 0)
        found: pd.DataFrame = (
            votes.join(F.broadcast(pairs), [LEFT_ID, RIGHT_ID]).select("_i", "sim").toPandas()
        )
        out[found["_i"].to_numpy(np.int64)] = found["sim"].to_numpy(np.float64)
        return out

    def save_round(self, round_no: int, anchors: dict[str, np.ndarray], state: RunState) -> None:
        self._anchors = {k: v.copy() for k, v in anchors.items()}
        pdf = pd.DataFrame({k: list(v.tolist()) for k, v in anchors.items()})
        pdf = pdf.rename(columns={"round": "promoted_round"})
        pdf["position"] = np.arange(len(pdf), dtype=np.int64)  # the anchor list order keys the views
        schema = (
            f"position long, {LEFT_ID} {self._left_type}, {RIGHT_ID} {self._right_type}, "
            f"promoted_round int, {IS_SEED} boolean, votes long, views long, probability double, "
            "similarity double"
        )
        cols = ["position", LEFT_ID, RIGHT_ID, "promoted_round", IS_SEED, "votes", "views", "probability"]
        df = self.spark.createDataFrame(pdf[cols + ["similarity"]], schema)
        self.store.write_round(TABLE_ANCHORS, df, self.run_id, round_no)
        self.store.commit_round(
            self.run_id, round_no, {"state": json.dumps(state.to_dict(), default=_json_default)}
        )

    def right_sample(self, size: int) -> np.ndarray:
        return self._sample(self.right, size)[1]

    def left_sample(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        return self._sample(self.left, size)

    def nearest_rows(self, side: str, queries: np.ndarray) -> np.ndarray:
        """One pass over the table (:func:`stages.nearest.nearest_rows`); the queries' rows collected."""
        df = self.left if side == "left" else self.right
        found: pd.DataFrame = nearest.nearest_rows(df, queries).toPandas()
        if len(found) != len(queries):
            raise RuntimeError(f"{side} nearest rows: expected {len(queries)}, found {len(found)}")
        return found.sort_values("q")[ID].to_numpy()

    def fit_tables(
        self, seed_left: np.ndarray, seed_right: np.ndarray, size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
        """The fit sample, brought to the driver (at most ``size`` rows a side: bounded memory)."""
        sl, sr = self.anchor_vectors(seed_left, seed_right)
        out: list[np.ndarray] = []
        for df, n, seeds in ((self.left, self.n_left, sl), (self.right, self.n_right, sr)):
            rows = df
            if n > size:
                per_seed = rows_per_seed(size, len(seeds))
                # The ids (at most ``size``) are collected and broadcast back: a join of the window's
                # output with the table would shuffle the whole table (see _rows_of).
                near: pd.DataFrame = sample.neighbourhood_ids(df, seeds, per_seed).toPandas()
                kind = df.schema[ID].dataType.simpleString()
                keys = self.spark.createDataFrame(near[[ID]], f"{ID} {kind}")
                rows = df.join(F.broadcast(keys), ID)
            pdf: pd.DataFrame = rows.select(ID, VECTOR).toPandas()
            ids = pdf[ID].to_numpy()
            order = np.argsort(ids, kind="stable")
            out += [ids[order], normalise_rows(np.stack(pdf[VECTOR].to_numpy())[order])]
        whole = self.n_left <= size and self.n_right <= size
        return out[0], out[1], out[2], out[3], whole

    def load_last_round(self) -> tuple[int, dict[str, np.ndarray], RunState] | None:
        self.store.discard_uncommitted(self.run_id, [TABLE_ANCHORS, TABLE_VOTES])
        last = self.store.last_committed_round(self.run_id)
        if last is None:
            return None
        state = RunState.from_dict(json.loads(self.store.committed_rounds(self.run_id)[-1]["state"]))
        pdf: pd.DataFrame = self.store.read_round(TABLE_ANCHORS, self.run_id, last).toPandas()
        pdf = pdf.sort_values("position")
        anchors = {
            "left_id": pdf[LEFT_ID].to_numpy(),
            "right_id": pdf[RIGHT_ID].to_numpy(),
            "round": pdf["promoted_round"].to_numpy(np.int64),
            "is_seed": pdf[IS_SEED].to_numpy(bool),
            "votes": pdf["votes"].to_numpy(np.int64),
            "views": pdf["views"].to_numpy(np.int64),
            "probability": pdf["probability"].to_numpy(np.float64),
            # null in the rounds of a run written before the column existed
            "similarity": pdf["similarity"].to_numpy(np.float64, na_value=np.nan)
            if "similarity" in pdf
            else np.full(len(pdf), np.nan),
        }
        self._anchors = anchors
        return last, anchors, state


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
