"""The in-process backend: both tables as numpy arrays in the driver's process (no Spark).

:class:`NumpyBackend` computes a round's votes with the same kernels (:mod:`veclink_spark.kernels`) the
Spark stages run on executors, on whole arrays. A run fits on one (the fit sample, in
:mod:`veclink_spark.fit`) unless ``scale.fit_on`` says executors, the in-process API
(:mod:`veclink_spark.arrays`) links on one, and a fitted model links new rows in process on one; on the
same input, config and seed it gives the links of :class:`veclink_spark.backends.spark.SparkBackend`.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import pandas as pd

from ..config import LinkConfig
from ..kernels.blocking import block_best_matches, cap_block, cell_centroids
from ..kernels.centre import centred_with, normalise_rows, table_mean
from ..kernels.maps import CSLS_K, bag_flags, csls_block, csls_score, take_off_objective
from ..kernels.samples import hash_sample, neighbourhood_sample
from ..kernels.search import best_rows
from ..kernels.signatures import (
    SignatureRows,
    View,
    descriptor_sample_size,
    distribution_descriptors,
    geh_signature_rows,
    refine_right_rows,
    refine_signature_rows,
    view_column_means,
    view_kernel_sums,
)
from ..state import Candidates, RoundVotes, RunState
from .base import FIT_CELL_PROBES, HASH_KEYS, INIT_QUANTILES, INIT_SAMPLE, MAX_BLOCK_SIZE

log = logging.getLogger(__name__)


def mutual_nearest(best: pd.DataFrame) -> pd.DataFrame:
    """Per-view mutual nearest neighbours from block-level best matches.

    ``best`` has columns view, left_id, right_id, sim, dir ('L': the left's best in a block, 'R': the
    right's best). Across blocks a vector keeps its highest-sim match (ties: smaller id).
    """
    lb = best[best["dir"] == "L"].sort_values(
        ["view", "left_id", "sim", "right_id"], ascending=[True, True, False, True], kind="mergesort"
    )
    lb = lb.drop_duplicates(["view", "left_id"], keep="first")
    rb = best[best["dir"] == "R"].sort_values(
        ["view", "right_id", "sim", "left_id"], ascending=[True, True, False, True], kind="mergesort"
    )
    rb = rb.drop_duplicates(["view", "right_id"], keep="first")
    keep = ["view", "left_id", "right_id", "sim"] + (["cos"] if "cos" in best.columns else [])
    return lb[keep].merge(rb[["view", "left_id", "right_id"]], on=["view", "left_id", "right_id"])


def rescored(best: pd.DataFrame, mnn: pd.DataFrame) -> pd.DataFrame:
    """The mutual pairs of a refine round (``mnn`` with its pairs' cos) scored with each row's largest
    r over its blocks of the view (:func:`veclink_spark.kernels.maps.csls_score`); ``best`` holds every
    block's best-match rows with their r. As
    :func:`veclink_spark.stages.mutual_nn.mutual_nearest_pairs` with ``rescore``.
    """
    if mnn.empty:
        return mnn[["view", "left_id", "right_id", "sim"]]
    return _largest_r_scored(mnn.drop(columns=["sim"]), best)[["view", "left_id", "right_id", "sim"]]


def _largest_r_scored(pairs: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` (view, left_id, right_id, cos, ...) with ``sim``: each pair's CSLS with each row's
    largest r over its blocks of the view, read from ``best`` (the rows 'L' for the left rows' r, 'R'
    for the right rows'); pairs one of whose rows has no r there are left out."""
    r_left = best[best["dir"] == "L"].groupby(["view", "left_id"], sort=False)["r"].max()
    r_right = best[best["dir"] == "R"].groupby(["view", "right_id"], sort=False)["r"].max()
    m = pairs.merge(r_left.rename("r_left").reset_index(), on=["view", "left_id"])
    m = m.merge(r_right.rename("r_right").reset_index(), on=["view", "right_id"])
    m["sim"] = csls_score(m["cos"].to_numpy(), m["r_left"].to_numpy(), m["r_right"].to_numpy())
    return m


def crowded_mutual_nearest(best: pd.DataFrame) -> pd.DataFrame:
    """Per-view mutual nearest neighbours of a refine round's block best matches (with r and cos), each
    row's match across its blocks chosen by CSLS with each row's largest r over its blocks of the view
    (:func:`veclink_spark.kernels.maps.csls_score`), the score the mutual pair then carries. As
    :func:`veclink_spark.stages.mutual_nn.mutual_nearest_pairs` with ``crowded``.

    Why not each block's own CSLS (:func:`mutual_nearest` then :func:`rescored`): a block's r is the mean
    of a row's best similarities in that block, low in a block far from the row's own neighbourhood,
    so the same cosine scores higher there and the row's far blocks win. With CSLS over a row's every
    block, r must be one number per row; the largest over its blocks is the one its most crowded block
    gives (:func:`~veclink_spark.kernels.maps.csls_score`). Measured on a clustered synthetic pair
    (20,000 rows a side, 300 clusters, 20 cells, 3 probes; one map fitted on a run's 11,275 links;
    scratch numpy): block CSLS gave 10,693 mutual pairs at P 0.713, R 0.838; the largest r 12,123 at
    P 0.746, R 0.993, where the exact CSLS over the whole tables gives 12,126 at P 0.746, R 0.994.
    Rows whose partner has no r in the view (every pair of the block dropped by ``keep``) are left out.
    """
    if best.empty:
        return best[["view", "left_id", "right_id", "sim"]]
    scored = _largest_r_scored(best.drop(columns=["sim", "r"]), best)
    return mutual_nearest(scored)[["view", "left_id", "right_id", "sim"]]


class NumpyBackend:
    """Holds both tables in memory and computes a round's votes with the shared kernels."""

    def __init__(
        self,
        left_ids: np.ndarray,
        left: np.ndarray,
        right_ids: np.ndarray,
        right: np.ndarray,
        cfg: LinkConfig,
        centred: bool = False,
    ):
        """``centred``: the vectors were already centred (a fit sample of centred tables)."""
        self.left_ids = np.asarray(left_ids)
        self.right_ids = np.asarray(right_ids)
        self.left = normalise_rows(left)
        self.right = normalise_rows(right)
        #: The tables' mean unit vectors when this backend centred them (a fitted model keeps them).
        self.left_mean: np.ndarray | None = None
        self.right_mean: np.ndarray | None = None
        if cfg.vectors.centre and not centred:
            self.left_mean = table_mean(self.left.sum(axis=0), len(self.left))
            self.right_mean = table_mean(self.right.sum(axis=0), len(self.right))
            self.left = centred_with(self.left, self.left_mean)
            self.right = centred_with(self.right, self.right_mean)
        self.n_left, self.dim_left = self.left.shape
        self.n_right, self.dim_right = self.right.shape
        self.cfg = cfg
        self._lpos = {k: i for i, k in enumerate(self.left_ids.tolist())}
        self._rpos = {k: i for i, k in enumerate(self.right_ids.tolist())}
        self.cum: pd.DataFrame = pd.DataFrame(columns=["left_id", "right_id", "cum_votes"])
        self.round_table: pd.DataFrame | None = None
        self.tables: dict[int, pd.DataFrame] = {}
        #: The last round's proposals before the excluded ids are left out: (round, pairs with sim).
        self.proposed: tuple[int, pd.DataFrame] | None = None
        self._round_no = 0
        self.rounds: list[tuple[int, dict[str, np.ndarray], dict[str, Any]]] = []

    # -- Backend protocol ------------------------------------------------------------------------
    def anchor_vectors(self, left_ids: np.ndarray, right_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        li = [self._lpos[k] for k in np.asarray(left_ids).tolist()]
        ri = [self._rpos[k] for k in np.asarray(right_ids).tolist()]
        return self.left[li], self.right[ri]

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
        rows = []
        for side, x, anchors in (("left", self.left, vec_left), ("right", self.right, vec_right)):
            means = None
            if centering == "anchor":
                counts, sums = view_kernel_sums(x, anchors, views, side)
                means = view_column_means(counts, sums, views)
            rows.append(
                geh_signature_rows(
                    x,
                    anchors,
                    views,
                    side,
                    probes=HASH_KEYS,
                    centering=centering,
                    column_means=means,
                )
            )
        rl, rr = rows
        self._round_no = round_no
        return self._votes(rl, rr, len(views), exclude_left, exclude_right, phase_start)

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
        self._round_no = round_no
        rl = refine_signature_rows(self.left, maps, centroids, probes=probes)
        rr = refine_right_rows(self.right, len(maps), centroids, probes=probes)
        return self._votes(
            rl,
            rr,
            len(maps),
            exclude_left,
            exclude_right,
            phase_start,
            csls_k=CSLS_K,
            keep=keep,
            salt=salt,
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
        self._round_no = round_no
        size = descriptor_sample_size(INIT_SAMPLE, self.n_left, self.n_right)
        dl, _ = _descriptors(self.left, self.left_ids, size, INIT_QUANTILES)
        dr, sample_r = _descriptors(self.right, self.right_ids, size, INIT_QUANTILES)
        centroids = cell_centroids(dr[sample_r], n_cells, cells_seed)
        eye = np.eye(dl.shape[1])[None, :, :]
        rl = refine_signature_rows(dl, eye, centroids, probes=FIT_CELL_PROBES)
        rr = refine_right_rows(dr, 1, centroids, probes=FIT_CELL_PROBES)
        return self._votes(rl, rr, 1, exclude_left, exclude_right, phase_start, csls_k=CSLS_K)

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
            a = self.rounds[-1][1] if self.rounds else None
            if a is None:
                dl, dr = np.asarray([]), np.asarray([])
            else:
                dl, dr = a["left_id"][~a["is_seed"]], a["right_id"][~a["is_seed"]]
        else:
            t = self.tables[prev_round]
            dl, dr = t["left_id"].to_numpy(), t["right_id"].to_numpy()
        flags = bag_flags(dl, dr, n_bags, fraction, salt)
        xs, ys = self.anchor_vectors(fixed_left, fixed_right)
        seed_cross = xs.T @ ys
        if len(dl) == 0:
            return np.stack([seed_cross] * n_bags)
        x, y = self.anchor_vectors(dl, dr)
        return np.stack([seed_cross + x[flags[:, b]].T @ y[flags[:, b]] for b in range(n_bags)])

    def candidates(self, round_no: int, min_round_votes: int, min_cum_votes: int) -> Candidates:
        t = self.round_table
        assert t is not None  # set by the round's votes call; internal invariant, not user input
        t = t[(t["round_votes"] >= min_round_votes) & (t["cum_votes"] >= min_cum_votes)]
        return Candidates(
            t["left_id"].to_numpy(),
            t["right_id"].to_numpy(),
            t["round_votes"].to_numpy(np.int64),
            t["cum_votes"].to_numpy(np.int64),
            t["sim"].to_numpy(np.float64),
        )

    def proposed_similarity(self, round_no: int, left_ids: np.ndarray, right_ids: np.ndarray) -> np.ndarray:
        out = np.full(len(left_ids), np.nan)
        if self.proposed is None or self.proposed[0] != round_no:
            return out
        t = self.proposed[1]
        sim = dict(
            zip(
                zip(t["left_id"].tolist(), t["right_id"].tolist(), strict=True),
                t["sim"].tolist(),
                strict=True,
            )
        )
        for i, pair in enumerate(
            zip(np.asarray(left_ids).tolist(), np.asarray(right_ids).tolist(), strict=True)
        ):
            out[i] = sim.get(pair, np.nan)
        return out

    def save_round(self, round_no: int, anchors: dict[str, np.ndarray], state: RunState) -> None:
        # The state is kept as the dict the Spark backend writes as JSON, so a resume sees the same.
        anchors_copy = {k: v.copy() for k, v in anchors.items()}
        self.rounds.append((round_no, anchors_copy, copy.deepcopy(state.to_dict())))

    def fit_backend(
        self, left_ids: np.ndarray, left: np.ndarray, right_ids: np.ndarray, right: np.ndarray, name: str
    ) -> NumpyBackend:
        """In process, whatever ``scale.fit_on`` says (:func:`veclink_spark.arrays.link_arrays` rejects
        ``executors``): the rows are already here."""
        return NumpyBackend(left_ids, left, right_ids, right, self.cfg, centred=True)

    def release(self) -> None:
        """Nothing is held outside the process."""

    def load_last_round(self) -> tuple[int, dict[str, np.ndarray], RunState] | None:
        if not self.rounds:
            return None
        round_no, anchors, state = self.rounds[-1]
        return round_no, {k: v.copy() for k, v in anchors.items()}, RunState.from_dict(copy.deepcopy(state))

    def right_sample(self, size: int) -> np.ndarray:
        return self.right[hash_sample(self.right_ids, size)]

    def left_sample(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        at = hash_sample(self.left_ids, size)
        return self.left_ids[at], self.left[at]

    def nearest_rows(self, side: str, queries: np.ndarray) -> np.ndarray:
        ids, x = (self.left_ids, self.left) if side == "left" else (self.right_ids, self.right)
        return ids[best_rows(ids, x, queries)[0]]

    def label_round(self, round_no: int, phase: str) -> None:
        """Nothing to label in process (the Spark backend tags the round's jobs)."""

    def fit_tables(
        self, seed_left: np.ndarray, seed_right: np.ndarray, size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
        sl, sr = self.anchor_vectors(seed_left, seed_right)
        li = neighbourhood_sample(self.left_ids, self.left, sl, size)
        ri = neighbourhood_sample(self.right_ids, self.right, sr, size)
        whole = self.n_left <= size and self.n_right <= size
        return self.left_ids[li], self.left[li], self.right_ids[ri], self.right[ri], whole

    # -- internals -------------------------------------------------------------------------------
    def _votes(
        self,
        rl: SignatureRows,
        rr: SignatureRows,
        n_views: int,
        exclude_left: np.ndarray,
        exclude_right: np.ndarray,
        phase_start: bool,
        csls_k: int | None = None,
        keep: float = 1.0,
        salt: int = 0,
        crowded: bool = False,
    ) -> RoundVotes:
        """One round's votes from both sides' signature rows; ``csls_k``: a refine (or distribution)
        round's CSLS blocks; ``crowded``: each row's match across its blocks by its largest r (the
        refine rounds; :func:`crowded_mutual_nearest`)."""
        cap = MAX_BLOCK_SIZE
        lids, rids = self.left_ids[rl.row], self.right_ids[rr.row]
        lgroups = pd.DataFrame({"view": rl.view, "key": rl.key}).groupby(["view", "key"], sort=True).indices
        rgroups = pd.DataFrame({"view": rr.view, "key": rr.key}).groupby(["view", "key"], sort=True).indices
        blocks = []
        sizes = []
        for block, li in lgroups.items():
            ri = rgroups.get(block)
            if ri is None:
                continue
            sizes.append(max(len(li), len(ri)))
            kl = li[cap_block(lids[li], rl.dist[li], cap)]
            kr = ri[cap_block(rids[ri], rr.dist[ri], cap)]
            blocks.append((block[0], kl, kr))
        parts = []
        r_left: list[np.ndarray] = []
        r_right: list[np.ndarray] = []
        for view, kl, kr in blocks:
            if csls_k is None:
                a, ab, asim, b, ba, bsim = block_best_matches(rl.sig[kl], lids[kl], rr.sig[kr], rids[kr])
                lpart = {"view": view, "left_id": a, "right_id": ab, "sim": asim, "dir": "L"}
                rpart = {"view": view, "left_id": ba, "right_id": b, "sim": bsim, "dir": "R"}
            else:
                bb = csls_block(lids[kl], rl.sig[kl], rids[kr], rr.sig[kr], csls_k, keep, salt)
                lpart = {"view": view, "left_id": bb.left, "right_id": bb.left_best, "sim": bb.left_score}
                lpart.update(dir="L", r=bb.left_r, cos=bb.left_cos)
                rpart = {"view": view, "left_id": bb.right_best, "right_id": bb.right, "sim": bb.right_score}
                rpart.update(dir="R", r=bb.right_r, cos=bb.right_cos)
                r_left.append(bb.left_r)
                r_right.append(bb.right_r)
            parts.append(pd.DataFrame(lpart))
            parts.append(pd.DataFrame(rpart))
        columns = ["view", "left_id", "right_id", "sim", "dir"] + (["r", "cos"] if csls_k is not None else [])
        best = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
        if csls_k is not None and crowded:
            mnn = crowded_mutual_nearest(best)
        else:
            mnn = mutual_nearest(best)
            if csls_k is not None:
                mnn = rescored(best, mnn)
        rv = (
            mnn.groupby(["left_id", "right_id"], sort=False)
            .agg(round_votes=("view", "size"), sim=("sim", "max"))
            .reset_index()
        )
        if phase_start:
            self.cum = pd.DataFrame(columns=["left_id", "right_id", "cum_votes"])
        cum = self.cum.merge(rv, on=["left_id", "right_id"], how="outer")
        cum["cum_votes"] = pd.to_numeric(cum["cum_votes"]).fillna(0).astype(np.int64) + pd.to_numeric(
            cum["round_votes"]
        ).fillna(0).astype(np.int64)
        self.cum = cum[["left_id", "right_id", "cum_votes"]]
        self.proposed = (self._round_no, rv[["left_id", "right_id", "sim"]])
        table = rv.merge(self.cum, on=["left_id", "right_id"], how="left")
        table = table[
            ~table["left_id"].isin(set(np.asarray(exclude_left).tolist()))
            & ~table["right_id"].isin(set(np.asarray(exclude_right).tolist()))
        ]
        self.round_table = table
        self.tables[self._round_no] = table
        cells = table.groupby(["round_votes", "cum_votes"]).size().reset_index().to_numpy(np.int64)
        stats: dict[str, Any] = {
            "blocks": len(sizes),
            "max_block": int(max(sizes)) if sizes else 0,
            "mean_block": float(np.mean(sizes)) if sizes else 0.0,
            "mnn_pairs": int(len(mnn)),
        }
        if csls_k is not None and keep < 1.0:
            # Only the dropout rounds' objective paces anything (engine._adapt_keep); as in Spark.
            stats["objective"] = take_off_objective(_mean(r_left), _mean(r_right))
        return RoundVotes(n_views=n_views, cells=cells, stats=stats)


def _mean(parts: list[np.ndarray]) -> float | None:
    """Mean of the concatenated parts (None when they hold nothing), summed in a fixed order: the same
    number as Spark's average over the same rows up to rounding
    (:func:`veclink_spark.kernels.maps.take_off_objective`)."""
    values = np.concatenate(parts) if parts else np.zeros(0)
    return float(values.mean()) if len(values) else None


def _descriptors(
    x: np.ndarray, ids: np.ndarray, sample_size: int, quantiles: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every row's :func:`veclink_spark.kernels.signatures.distribution_descriptors`, in chunks (a chunk x
    sample matrix at a time), and the sample's row indices."""
    pick = hash_sample(ids, sample_size)
    sample, sample_ids = x[pick], ids[pick]
    step = 4096
    parts = [
        distribution_descriptors(x[i : i + step], ids[i : i + step], sample, sample_ids, quantiles)
        for i in range(0, len(x), step)
    ]
    # Re-normalised as the Spark stages re-normalise every vector they read, so both see the same rows.
    return normalise_rows(np.concatenate(parts)), pick
