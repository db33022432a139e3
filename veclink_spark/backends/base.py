"""The Backend protocol: where the vectors live, as the round driver sees it.

Two backends implement it: :class:`veclink_spark.backends.in_process.NumpyBackend` (numpy arrays in the
driver's process: a run's fit unless ``scale.fit_on`` says executors, and the in-process API) and
:class:`veclink_spark.backends.spark.SparkBackend` (executors, Delta tables: the extension's rounds, and
the fit's with ``scale.fit_on`` executors). The round driver
(:func:`veclink_spark.engine.run_rounds`) and the kernels are shared, so both give the same links.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..kernels.signatures import View
from ..state import Candidates, RoundVotes, RunState

# The vote computations' fixed settings, shared by both backends so that they give the same links.

#: Blocking keys of a vector in a view of the published loop: the ids of its 2 nearest view anchors
#: (a vector near a boundary between two anchors' regions still meets its partner).
HASH_KEYS = 2
#: Most vectors a block (view or cell, key) keeps per side, the closest to the key's anchor; larger
#: blocks are cut and reported. A block of 50,000 rows a side is searched in slices
#: (:data:`veclink_spark.kernels.blocking.BLOCK_ENTRIES`), in 128 MiB.
MAX_BLOCK_SIZE = 50_000
#: Cells each row of the fit's blocked search meets (its nearest one); on the 10,000-row scale pair in
#: process, F1 for run seeds 0 / 1: one cell 0.807 / 0.814, two cells - / 0.807. The full-table rounds
#: use ``scale.probes``.
FIT_CELL_PROBES = 1
#: Rows of each table (the ones with the smallest id hashes) the 'distribution' descriptors measure
#: similarities to; the sample travels to every executor (rows x dim floats).
INIT_SAMPLE = 4000
#: Length of a 'distribution' descriptor (ranks read on a geometric grid).
INIT_QUANTILES = 100


class Backend(Protocol):
    """Where the vectors live. Every method returns small aggregates only."""

    n_left: int
    n_right: int
    dim_left: int
    dim_right: int

    def anchor_vectors(self, left_ids: np.ndarray, right_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors of the given anchors, in the given order."""
        ...

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
        """Compute the round's view votes, add them to the phase's cumulative votes."""
        ...

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
        """Compute the round's bagged-map votes, add them to the phase's cumulative votes; each row is
        searched in its ``probes`` nearest cells of ``centroids``.

        ``keep`` < 1: each pair competes for a best match only if ``kernels.maps.keep_mask(.., keep, salt)``
        keeps it (stochastic dictionary induction).

        A row's match across its blocks is its block best of highest CSLS with each row's largest r over
        its blocks (:func:`veclink_spark.backends.in_process.crowded_mutual_nearest`).
        """
        ...

    def distribution_votes(
        self,
        round_no: int,
        n_cells: int,
        cells_seed: int,
        exclude_left: np.ndarray,
        exclude_right: np.ndarray,
        phase_start: bool,
    ) -> RoundVotes:
        """The 'distribution' initialisation round: CSLS mutual nearest neighbours of the rows'
        :func:`veclink_spark.kernels.signatures.distribution_descriptors` (each table's sample: its
        :data:`INIT_SAMPLE` rows of smallest :func:`veclink_spark.kernels.samples.sample_keys`), blocked by
        ``n_cells`` k-means cells of the right sample's descriptors (``cells_seed``); one view."""
        ...

    def cross_covariance(
        self,
        prev_round: int | None,
        n_bags: int,
        fraction: float,
        salt: int,
        fixed_left: np.ndarray,
        fixed_right: np.ndarray,
    ) -> np.ndarray:
        """sum of x_left y_right^T over the dictionary pairs in bag b, for every bag: (n_bags, d1, d2).

        The dictionary is the fixed pairs ``fixed_left``/``fixed_right`` (in every bag: the seeds, or an
        extension's fitted links) plus, for ``prev_round`` None, the current non-seed anchors, else every
        eligible pair proposed in round ``prev_round``; bag membership of a non-seed pair is
        :func:`veclink_spark.kernels.maps.bag_flags` with ``fraction`` and ``salt``.
        """
        ...

    def candidates(self, round_no: int, min_round_votes: int, min_cum_votes: int) -> Candidates:
        """Eligible pairs of the round with at least these round and cumulative votes."""
        ...

    def proposed_similarity(self, round_no: int, left_ids: np.ndarray, right_ids: np.ndarray) -> np.ndarray:
        """Each pair's (``left_ids[i]``, ``right_ids[i]``) CSLS similarity as round ``round_no`` (the
        last a votes call made) proposed it, pairs touching excluded ids included; NaN where that round
        did not propose the pair."""
        ...

    def save_round(self, round_no: int, anchors: dict[str, np.ndarray], state: RunState) -> None:
        """Persist the round (anchor table and state); the round counts as committed afterwards."""
        ...

    def load_last_round(self) -> tuple[int, dict[str, np.ndarray], RunState] | None:
        """The last committed round of this run, or None."""
        ...

    def right_sample(self, size: int) -> np.ndarray:
        """Unit vectors of the right table's ``size`` rows of smallest
        :func:`veclink_spark.kernels.samples.sample_keys` (ties by id), in that order."""
        ...

    def left_sample(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, unit vectors) of the left table's ``size`` rows of smallest
        :func:`veclink_spark.kernels.samples.sample_keys` (ties by id), in that order."""
        ...

    def nearest_rows(self, side: str, queries: np.ndarray) -> np.ndarray:
        """For each of ``queries`` (unit vectors in ``side``'s space), the id of its most similar row of
        the ``side`` table ("left" or "right"), found exactly
        (:func:`veclink_spark.kernels.search.best_rows`: ties go to the smaller id)."""
        ...

    def fit_tables(
        self, seed_left: np.ndarray, seed_right: np.ndarray, size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
        """The fit sample (:func:`veclink_spark.kernels.samples.neighbourhood_sample` of each table, at most
        ``size`` rows a side) as (left ids, left unit vectors, right ids, right unit vectors, whether it
        is the whole of both tables), rows sorted by id."""
        ...

    def fit_backend(
        self, left_ids: np.ndarray, left: np.ndarray, right_ids: np.ndarray, right: np.ndarray, name: str
    ) -> Backend:
        """The backend the fit's rounds run on, over these rows of the tables (the fit sample: ids and
        their unit vectors, rows sorted by id): in the driver's process, or, on the Spark backend with
        ``scale.fit_on`` executors, on executors over the same rows, its rounds committed under the run
        id ``<run id>-<name>``. :meth:`release` it when the fit is done."""
        ...

    def release(self) -> None:
        """Free what the backend holds outside the driver's process (a fit's cached rows)."""
        ...

    def label_round(self, round_no: int, phase: str) -> None:
        """Name the work of the round that starts (the Spark job tags its jobs for the Spark UI; the
        in-process engine has nothing to label)."""
        ...
