"""A fitted link model: what a run learned, kept to translate vectors and link rows that arrive later.

A run's links come with what produced them; the model keeps the part that applies to new rows:

* the tables' mean unit vectors (the run centres each table on its mean; new rows are centred on the
  *fitted* means, so they land in the same space as the rows the run saw);
* translation maps (left -> right and back): ridge least squares on the links' centred vectors (the
  seeds and a hash sample of at most :data:`FIT_PAIRS` links, as for every map here), used to
  ``translate``; a
  general linear map translates better than the orthogonal one (WordNet MiniLM-L6 -> L3 merged index,
  NDCG@10 0.834 against 0.784, docs/use.md);
* one orthogonal map W (left -> right, Procrustes on the links);
* ``engine.POLISH_MAPS`` bagged maps (each fitted on a hash-chosen ``engine.BAG_FRACTION`` of the links
  plus the seeds, as in a run's polish round) and the blocking cells of the right space, used to
  ``link`` new rows: a new link needs ``engine.POLISH_MIN_VOTE_FRACTION`` of the bagged maps to propose
  it as a CSLS mutual nearest neighbour, and its probability is the posterior mean of those votes, as
  for a run's polished links (:func:`veclink_spark.engine.vote_round`);
* the run's summary (verdict, counts) and, when loaded from a saved model, its links.

A model is saved as a folder: ``model.json`` (configuration, dimensions, id types, the run's summary; no
pickle) and one Delta table ``arrays`` holding the means, the maps and the cells row by row. It is
written by every run of :class:`veclink_spark.linker.Linker` under ``<output>/model`` and read back by
:func:`veclink_spark.model_spark.load_model`. This module is numpy only (``translate_arrays``,
``link_arrays``, ``merge_arrays``); saving, loading, and translating or linking DataFrames on executors
are the functions of :mod:`veclink_spark.model_spark`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from .backends.base import Backend
from .backends.in_process import NumpyBackend
from .config import LinkConfig
from .constants import PRECISION_ESTIMATE
from .engine import BAG_FRACTION, POLISH_MAPS, POLISH_MIN_VOTE_FRACTION, vote_round
from .errors import InputError
from .extend import extension_cells
from .kernels.centre import centred_with, normalise_rows
from .kernels.maps import CROSS_DECIMALS, bag_flags, procrustes_map
from .kernels.samples import hash_sample
from .trust import assess_new_links, checked_min_precision

#: Format of a saved model's ``model.json`` (bumped when the saved layout changes).
MODEL_FORMAT = 1
#: The salts of the model's map draws, apart from any round's (a run's rounds use seed * 1_000_003 + round).
_MAP_SALT = 7_919
#: Links (at most, plus the seeds) whose vectors come to the driver to fit the model's maps (10,000 x
#: (768 + 384) doubles = 92 MB); a ridge map on 2,500 links translates as well as one on all 3,600 true
#: pairs (docs/use.md).
FIT_PAIRS = 10_000
#: Ridge penalty of the translation maps (0.1 and 1.0 measured alike on WordNet, docs/use.md).
RIDGE = 1.0


@dataclass
class LinkModel:
    """Maps and means fitted by a run (see the module doc).

    Attributes:
        config: the run's configuration.
        left_mean, right_mean: the tables' mean unit vectors (None: the run did not centre).
        map: (dim_left, dim_right) orthogonal map, left -> right, on centred unit vectors.
        bag_maps: (views, dim_left, dim_right) bagged maps used to link new rows.
        cells: (cells, dim_right) k-means centroids that block the search in the right space.
        translation: (dim_left, dim_right) ridge map left -> right; translation_back: right -> left.
        info: run id, verdict, link and seed counts, table sizes, dimensions, id types.
        links: the run's links (a Spark DataFrame when loaded, pandas in process), or None.
        probes: the cells each row of the run's last full-table round met, which it may have chosen
            above ``scale.probes`` (:mod:`veclink_spark.search_recall`); None: ``scale.probes``.
    """

    config: LinkConfig
    left_mean: np.ndarray | None
    right_mean: np.ndarray | None
    map: np.ndarray
    bag_maps: np.ndarray
    cells: np.ndarray
    translation: np.ndarray
    translation_back: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    links: Any = None
    probes: int | None = None

    @property
    def dim_left(self) -> int:
        return int(self.map.shape[0])

    @property
    def dim_right(self) -> int:
        return int(self.map.shape[1])

    # -- vectors -----------------------------------------------------------------------------------
    def centred(self, x: np.ndarray, side: str) -> np.ndarray:
        """Rows of one side as the run saw them: unit, minus the fitted table mean, unit again."""
        x = self._checked(x, side)
        mean = self.left_mean if side == "left" else self.right_mean
        units = normalise_rows(x)
        return units if mean is None else centred_with(units, mean)

    def translate_arrays(self, x: np.ndarray, side: str = "left") -> np.ndarray:
        """Unit vectors of ``side``'s model mapped into the other model's space (as raw unit vectors of
        that model: comparable by cosine with its own embeddings).

        The map works on centred vectors; the result is put back around the other table's mean: a unit
        vector y of a table with mean mu is mu + (y - mu), and |y - mu| is sqrt(1 - |mu|^2) on average
        (E|y|^2 = 1, E y = mu), so a mapped centred direction c becomes mu + sqrt(1 - |mu|^2) c.
        """
        c = self.centred(x, side)
        y = normalise_rows(c @ (self.translation if side == "left" else self.translation_back))
        mean = self.right_mean if side == "left" else self.left_mean
        if mean is not None:
            spread = math.sqrt(max(1.0 - float(mean @ mean), 0.0))
            y = normalise_rows(mean[None, :] + spread * y)
        return y

    def _checked(self, x: np.ndarray, side: str) -> np.ndarray:
        if side not in ("left", "right"):
            raise InputError(f"side must be 'left' or 'right', got {side!r}")
        x = np.asarray(x, dtype=np.float64)
        dim = self.dim_left if side == "left" else self.dim_right
        if x.ndim != 2 or x.shape[1] != dim:
            raise InputError(
                f"{side} vectors of this model have {dim} dimensions; got an array of shape {x.shape}"
            )
        if not np.isfinite(x).all():
            raise InputError(f"{side} vectors contain NaN or infinite values")
        if (np.linalg.norm(x, axis=1) == 0).any():
            raise InputError(f"{side} vectors contain all-zero rows")
        return x

    # -- new rows, in process ----------------------------------------------------------------------
    def link_arrays(
        self,
        new_ids: np.ndarray,
        new: np.ndarray,
        other_ids: np.ndarray,
        other: np.ndarray,
        side: str = "left",
        existing_ids: np.ndarray | None = None,
        existing: np.ndarray | None = None,
        min_precision: float | None = None,
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Link rows of ``side`` that arrived after the fit against the other side's table.

        A new row must win its pair as the run's rows do: a mutual best match among *all* rows, so
        ``existing`` (the rows of ``side`` the model was fitted on) compete too, and ``other`` is the
        whole other table; pairs touching a link of the model are left out (``self.links``), and only
        links of new rows are returned. Without ``existing`` the new rows compete only among themselves
        (many more false links where few new rows have a partner: measured in docs/use.md).

        Each new link gets ``precision_estimate`` as a run's links do, estimated on these tables
        (:func:`veclink_spark.trust.assess_new_links`); ``min_precision`` (default: the run's
        ``links.min_precision``) keeps the links estimated at least that precise.

        Returns (links, summary): links as a run's (left_id, right_id, probability, votes, views,
        round 1, is_seed False, precision_estimate, similarity), summary with the counts, the
        estimated precision of the new links and the fitted run's verdict.
        """
        min_precision = checked_min_precision(min_precision)
        ids, x = np.asarray(new_ids), self._checked(new, side)
        if existing_ids is not None and existing is not None:
            clash = set(np.asarray(existing_ids).tolist()) & set(ids.tolist())
            if clash:
                raise InputError(
                    f"new {side} ids already in the table the model was fitted on: {sorted(clash)[:5]}"
                )
            ids = np.concatenate([np.asarray(existing_ids), ids])
            x = np.concatenate([self._checked(existing, side), x])
        x_side, x_other = self.centred(x, side), self.centred(other, other_side(side))
        cfg = self.search_config()
        if side == "left":
            backend = NumpyBackend(ids, x_side, other_ids, x_other, cfg, centred=True)
        else:
            backend = NumpyBackend(other_ids, x_other, ids, x_side, cfg, centred=True)
        ex_l, ex_r = self._linked()
        links, record = vote_round(backend, cfg, self.bag_maps, self.cells, ex_l, ex_r)
        new_set = set(np.asarray(new_ids).tolist())
        links = links_of_new(links, "left_id" if side == "left" else "right_id", new_set)
        there = np.isin(ex_l, backend.left_ids) & np.isin(ex_r, backend.right_ids)
        fitted = {"left_id": ex_l[there], "right_id": ex_r[there], "is_seed": self._seed_flags()[there]}
        links, facts = assess_new_links(
            backend, fitted, links, (side, np.asarray(new_ids)), self.vote(), cfg, min_precision
        )
        summary = self.new_rows_summary(len(new_ids), len(other_ids), side, links, record)
        summary.update(facts)
        return pd.DataFrame(links), summary

    def merge_arrays(
        self,
        left_ids: np.ndarray,
        left: np.ndarray,
        right_ids: np.ndarray,
        right: np.ndarray,
        into: str = "right",
        min_precision: float = 0.0,
    ) -> pd.DataFrame:
        """The merged index in process (what :func:`veclink_spark.model_spark.merge` writes to Delta):
        rows source, source_id, linked_id, probability, precision_estimate, vector; ``into``'s rows as
        they are (unit), the other side's unlinked rows translated, a linked pair once (with
        ``min_precision``, only the links estimated at least that precise and the seeds). Needs
        ``self.links`` (pandas)."""
        if into not in ("left", "right"):
            raise InputError(f"into must be 'left' or 'right', got {into!r}")
        min_precision = checked_min_precision(min_precision) or 0.0
        ll, lr = self._linked()
        links = self.links if isinstance(self.links, pd.DataFrame) else pd.DataFrame()
        prob = links["probability"].to_numpy(np.float64) if len(ll) else np.zeros(0)
        est = (
            links[PRECISION_ESTIMATE].to_numpy(np.float64)
            if PRECISION_ESTIMATE in links
            else np.full(len(ll), np.nan)
        )
        if min_precision > 0:
            if PRECISION_ESTIMATE not in links:
                raise InputError(
                    "the model's links have no precision_estimate: min_precision cannot cut them"
                )
            trusted = self._seed_flags() | (np.nan_to_num(est, nan=-1.0) >= min_precision)
            ll, lr, prob, est = ll[trusted], lr[trusted], prob[trusted], est[trusted]
        own_ids, own, other_ids, other = (
            (right_ids, right, left_ids, left) if into == "right" else (left_ids, left, right_ids, right)
        )
        own_linked, other_linked = (lr, ll) if into == "right" else (ll, lr)
        partner = dict(
            zip(
                own_linked.tolist(),
                zip(other_linked.tolist(), prob.tolist(), est.tolist(), strict=True),
                strict=True,
            )
        )
        keep = ~np.isin(np.asarray(other_ids), other_linked)
        kept = normalise_rows(self._checked(own, into)).astype(np.float32)
        moved = self.translate_arrays(np.asarray(other)[keep], other_side(into)).astype(np.float32)
        own_list = np.asarray(own_ids).tolist()
        return pd.DataFrame(
            {
                "source": [into] * len(own_list) + [other_side(into)] * int(keep.sum()),
                "source_id": [str(i) for i in own_list]
                + [str(i) for i in np.asarray(other_ids)[keep].tolist()],
                "linked_id": [str(partner[i][0]) if i in partner else None for i in own_list]
                + [None] * int(keep.sum()),
                "probability": [partner[i][1] if i in partner else np.nan for i in own_list]
                + [np.nan] * int(keep.sum()),
                PRECISION_ESTIMATE: [partner[i][2] if i in partner else np.nan for i in own_list]
                + [np.nan] * int(keep.sum()),
                "vector": list(np.concatenate([kept, moved])),
            }
        )

    def search_config(self) -> LinkConfig:
        """The configuration new rows are searched with: the run's (``self.cells`` are its full-table
        rounds', so each row meets the rows of as many nearest cells as the last of those rounds did:
        ``probes``, else ``scale.probes``)."""
        if self.probes is None:
            return self.config
        return replace(self.config, scale=replace(self.config.scale, probes=self.probes))

    def _linked(self) -> tuple[np.ndarray, np.ndarray]:
        """The model's links (seeds included) as id arrays, or empty arrays."""
        if self.links is None or not isinstance(self.links, pd.DataFrame):
            e = np.asarray([], dtype=np.int64)
            return e, e
        return self.links["left_id"].to_numpy(), self.links["right_id"].to_numpy()

    def vote(self) -> tuple[np.ndarray, int]:
        """The vote that keeps a new row's link: the bagged maps, and how many of them it needs."""
        return self.bag_maps, int(math.ceil(POLISH_MIN_VOTE_FRACTION * len(self.bag_maps) - 1e-9))

    def _seed_flags(self) -> np.ndarray:
        """Which of the model's links (:meth:`_linked`) are seeds."""
        if not isinstance(self.links, pd.DataFrame) or "is_seed" not in self.links:
            return np.zeros(len(self._linked()[0]), bool)
        return self.links["is_seed"].to_numpy(bool)

    def new_rows_summary(
        self, n_new: int, n_other: int, side: str, links: dict[str, np.ndarray], record: dict[str, Any]
    ) -> dict[str, Any]:
        """What a new-rows run reports: counts, the share linked, mean probability, and the verdict of
        the run that fitted the model (the new links' own estimate is added by the caller)."""
        prob = np.asarray(links["probability"], dtype=np.float64)
        return {
            "side": side,
            "new_rows": int(n_new),
            "searched_rows": int(n_other),
            "n_links": int(len(prob)),
            "linked_share": round(len(prob) / max(n_new, 1), 4),
            "mean_probability": round(float(prob.mean()), 4) if len(prob) else None,
            "model_run_id": self.info.get("run_id"),
            "verdict": self.info.get("verdict"),
            "round": record,
        }

    # -- persistence -------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The JSON part of a saved model (the arrays go to the Delta table)."""
        return {
            "format": MODEL_FORMAT,
            "config": self.config.to_dict(),
            "dim_left": self.dim_left,
            "dim_right": self.dim_right,
            "n_bag_maps": int(len(self.bag_maps)),
            "n_cells": int(len(self.cells)),
            "centred": self.left_mean is not None,
            "info": self.info,
            "probes": self.probes,
        }

    def array_rows(self) -> pd.DataFrame:
        """Every array of the model as rows (name, row, values): the saved ``arrays`` table."""
        names: list[str] = []
        rows: list[int] = []
        values: list[list[float]] = []

        def add(name: str, a: np.ndarray) -> None:
            a2 = np.atleast_2d(np.asarray(a, dtype=np.float64))
            names.extend([name] * len(a2))
            rows.extend(range(len(a2)))
            values.extend(a2.tolist())

        if self.left_mean is not None and self.right_mean is not None:
            add("left_mean", self.left_mean)
            add("right_mean", self.right_mean)
        add("map", self.map)
        for b, m in enumerate(self.bag_maps):
            add(f"bag_map_{b}", m)
        add("cells", self.cells)
        add("translation", self.translation)
        add("translation_back", self.translation_back)
        return pd.DataFrame({"name": names, "row": rows, "values": values})

    @classmethod
    def from_parts(cls, meta: dict[str, Any], arrays: pd.DataFrame, links: Any = None) -> LinkModel:
        """Rebuild a model from its JSON and its array rows (see :meth:`to_json`, :meth:`array_rows`).

        Raises:
            InputError: the JSON is of another format, or an array is missing or misshapen.
        """
        if meta.get("format") != MODEL_FORMAT:
            raise InputError(
                f"model format {meta.get('format')!r} is not {MODEL_FORMAT} (saved by another version)"
            )
        got: dict[str, np.ndarray] = {}
        for name, part in arrays.sort_values(["name", "row"]).groupby("name", sort=False):
            got[str(name)] = np.stack([np.asarray(v, dtype=np.float64) for v in part["values"]])

        def need(name: str, shape: tuple[int, ...]) -> np.ndarray:
            a = got.get(name)
            if a is None or a.shape != shape:
                raise InputError(
                    f"saved model: array {name!r} is {None if a is None else a.shape}, expected {shape}"
                )
            return a

        dl, dr = int(meta["dim_left"]), int(meta["dim_right"])
        means = (None, None)
        if meta.get("centred"):
            means = (need("left_mean", (1, dl))[0], need("right_mean", (1, dr))[0])
        return cls(
            config=LinkConfig.from_dict(meta["config"]),
            left_mean=means[0],
            right_mean=means[1],
            map=need("map", (dl, dr)),
            bag_maps=np.stack([need(f"bag_map_{b}", (dl, dr)) for b in range(int(meta["n_bag_maps"]))]),
            cells=need("cells", (int(meta["n_cells"]), dr)),
            translation=need("translation", (dl, dr)),
            translation_back=need("translation_back", (dr, dl)),
            info=dict(meta.get("info") or {}),
            links=links,
            probes=None if meta.get("probes") is None else int(meta["probes"]),
        )


def links_of_new(links: dict[str, np.ndarray], column: str, new_ids: set) -> dict[str, np.ndarray]:
    """The links whose ``column`` id is a new row's (a pair of two existing rows is not this run's)."""
    keep = np.asarray([v in new_ids for v in links[column].tolist()], dtype=bool)
    return {k: np.asarray(v)[keep] for k, v in links.items()}


def other_side(side: str) -> str:
    """The side that is not ``side`` ('left' or 'right')."""
    return "right" if side == "left" else "left"


def fit_model(
    backend: Backend,
    cfg: LinkConfig,
    links: dict[str, np.ndarray],
    left_mean: np.ndarray | None,
    right_mean: np.ndarray | None,
    info: dict[str, Any],
    cells: np.ndarray | None = None,
) -> LinkModel:
    """The model of a finished run on ``backend`` from its final ``links`` (a run's anchor table, seeds
    flagged). Every map is fitted on the seeds plus a hash sample of at most :data:`FIT_PAIRS` links,
    whose vectors come to the driver (one lookup on the backend); a map on 10,000 pairs is as good as
    one on all of them, and a million-row run's 500,000 links would otherwise cost nine (768 x 384)
    outer products per link on the executors. The k-means cells come from a hash sample of the right
    table (``cells``: the extension's, the same numbers, when the run had one: a million-row run's
    cells took 13 s of k-means and a pass over the right table to draw again). Both engines fit the
    same numbers in the same order (driver numpy)."""
    salt = cfg.run.seed * 1_000_003 + _MAP_SALT
    ll, lr, (xs, ys), (xl, xr) = _map_pairs(backend, links)
    # "Bag" 0 holds every sampled link (fraction 1): the orthogonal map; the others the bagged maps of
    # the new-rows vote (POLISH_MAPS maps on BAG_FRACTION each). Seeds are in every bag.
    flags = bag_flags(ll, lr, 1 + POLISH_MAPS, [1.0] + [BAG_FRACTION] * POLISH_MAPS, salt)
    seed_cross = xs.T @ ys
    cross = [seed_cross + xl[flags[:, b]].T @ xr[flags[:, b]] for b in range(flags.shape[1])]
    maps = np.stack([procrustes_map(c, decimals=CROSS_DECIMALS) for c in cross])
    # The cells of the full-table rounds (about scale.block_rows right rows each), not the fit's.
    if cells is None:
        cells = extension_cells(backend, cfg)
    x_all, y_all = np.concatenate([xs, xl]), np.concatenate([ys, xr])
    forth, back = ridge_map(x_all, y_all), ridge_map(y_all, x_all)
    return LinkModel(cfg, left_mean, right_mean, maps[0], maps[1:], cells, forth, back, info)


def _map_pairs(
    backend: Backend, links: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The pairs a model's maps are fitted on: (the sampled links' left and right ids, the seeds'
    vectors, the sampled links' vectors); see :func:`fit_model`."""
    seeds = np.asarray(links["is_seed"], dtype=bool)
    ll, lr = np.asarray(links["left_id"])[~seeds], np.asarray(links["right_id"])[~seeds]
    if len(ll) > FIT_PAIRS:
        pick = np.sort(hash_sample(ll, FIT_PAIRS))
        ll, lr = ll[pick], lr[pick]
    sl, sr = np.asarray(links["left_id"])[seeds], np.asarray(links["right_id"])[seeds]
    xs, ys = backend.anchor_vectors(sl, sr)
    xl, xr = backend.anchor_vectors(ll, lr) if len(ll) else (xs[:0], ys[:0])
    return ll, lr, (xs, ys), (xl, xr)


def orthogonal_map(backend: Backend, links: dict[str, np.ndarray]) -> np.ndarray:
    """The ``map`` of :func:`fit_model` alone (the same numbers: its bag 0 keeps every sampled link),
    for a run that fits no model."""
    _, _, (xs, ys), (xl, xr) = _map_pairs(backend, links)
    return procrustes_map(xs.T @ ys + xl.T @ xr, decimals=CROSS_DECIMALS)


def ridge_map(x: np.ndarray, y: np.ndarray, penalty: float = RIDGE) -> np.ndarray:
    """argmin_W |x W - y|^2 + penalty |W|^2 (a (dim_x, dim_y) matrix), by its normal equations: a
    d x d solve on the driver; scikit-learn's Ridge computes the same with more machinery."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return np.linalg.solve(x.T @ x + penalty * np.eye(x.shape[1]), x.T @ y)
