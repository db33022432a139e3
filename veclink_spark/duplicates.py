"""Exact and near-exact duplicate rows within one table (driver side, numpy / scipy).

Vector stores hold the same object twice (the same text stored under two ids). Left in, a duplicate
makes its object's partner choose between two equal rows, and the copy it does not choose is left to
match something else. A run therefore links one row per group of duplicates, its *kept* row: a seed
row when the group holds one, else the smallest id. The summary counts the groups and the
``duplicates`` table lists every other row with the row kept for it, so a user can give a link to
every copy (``docs/method.md``, "Duplicates").

Near-exact is a cosine similarity of at least :data:`DUPLICATE_COSINE` between the unit vectors: the
same text embedded twice, in another batch or after a float16 round trip, lands above it, and two
different texts of the real corpora here almost never do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

#: Unit vectors at least this similar are one object stored twice.
DUPLICATE_COSINE = 0.9999

#: Rows compared in one matrix product (bounds memory to BLOCK x n floats).
BLOCK = 2048


@dataclass(frozen=True)
class Duplicates:
    """One table's duplicate groups.

    Attributes:
        keep: True for the rows a run links (one per group, and every row without a copy).
        kept_for: for each row, the position of the row kept for it (itself when kept).
    """

    keep: np.ndarray
    kept_for: np.ndarray

    @property
    def groups(self) -> int:
        """Groups of two or more rows."""
        kept_with_copies = np.unique(self.kept_for[~self.keep])
        return int(len(kept_with_copies))

    @property
    def dropped(self) -> int:
        """Rows left out (copies of a kept row)."""
        return int((~self.keep).sum())


def find_duplicates(ids: np.ndarray, x: np.ndarray, protected: np.ndarray | None = None) -> Duplicates:
    """Group the rows of one table whose unit vectors are (near-)equal.

    Args:
        ids: the rows' ids (the kept row of a group is its smallest id, unless ``protected``).
        x: the rows' vectors (any length; compared as unit vectors).
        protected: True for rows that must be kept (the seeds): a group keeps its first protected row.

    Returns:
        A :class:`Duplicates` over the rows in the order given.
    """
    n = len(ids)
    if n < 2:
        return Duplicates(np.ones(n, bool), np.arange(n))
    u = np.asarray(x, np.float32)
    u = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    rows, cols = [], []
    for lo in range(0, n, BLOCK):
        sim = u[lo : lo + BLOCK] @ u.T
        i, j = np.nonzero(sim >= DUPLICATE_COSINE)
        i = i + lo
        upper = j > i
        rows.append(i[upper])
        cols.append(j[upper])
    r, c = np.concatenate(rows), np.concatenate(cols)
    if not len(r):
        return Duplicates(np.ones(n, bool), np.arange(n))
    graph = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    # The kept row of each group: a protected one first, then the smallest id (ties: the first row).
    prot = np.zeros(n, bool) if protected is None else np.asarray(protected, bool)
    order = np.lexsort((np.asarray(ids), ~prot, label))
    first = np.ones(n, bool)
    first[1:] = label[order][1:] != label[order][:-1]
    head = np.empty(int(label.max()) + 1, np.int64)
    head[label[order][first]] = order[first]
    kept_for = head[label]
    return Duplicates(kept_for == np.arange(n), kept_for)
