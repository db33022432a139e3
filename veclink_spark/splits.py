"""Splits with a known truth, made from one corpus embedded by two encoders: the demo data
(``jobs/make_demo.py``) and the benchmarks' splits are built here, and scored by ``evaluate``.

From one corpus of N texts embedded by two encoders E1 and E2 (same corpus ids on both sides):

1. Shuffle the corpus with a fixed random seed. The shared part S is ``round(alpha * N)`` texts; the rest
   is split in two equal halves, A-only and B-only (when the rest is odd, one text is left out so the
   halves stay equal).
2. Left = S + A-only embedded by E1; right = S + B-only embedded by E2.
3. Both sides get fresh random ids (int64, unique across the two sides, in ``[1, 2**53)`` so they survive
   a round trip through float64 or JSON) and their rows are shuffled independently, so nothing but the
   vectors connects them. The mapping is kept as the ground truth.
4. Seeds: ``n_seeds`` pairs drawn at random from S. Out-of-domain variant: the seed objects come from
   another corpus embedded by the same two encoders and are *added* to both tables (S keeps its size).
5. The truth holds every true pair (left id, right id): all of S, plus the seeds, each flagged with
   ``is_seed`` so scoring can exclude them (recall denominator = number of non-seed true pairs, which is
   ``|S| - n`` in-domain and ``|S|`` out-of-domain).

Everything runs in-process with numpy and pyarrow; all randomness comes from one
``numpy.random.default_rng(seed)``, so a split is a pure function of its inputs and ``seed``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .constants import ID, IS_SEED, LEFT_ID, RIGHT_ID, VECTOR
from .encoders import vectors_to_arrow
from .errors import InputError

log = logging.getLogger(__name__)

#: Fresh ids are drawn without replacement from ``[1, ID_SPACE]``; 2**53 keeps them exact in float64.
ID_SPACE = 2**53 - 1

LEFT_FILE = "left.parquet"
RIGHT_FILE = "right.parquet"
SEEDS_FILE = "seeds.parquet"
TRUTH_FILE = "truth.parquet"

Corpus = tuple[np.ndarray, np.ndarray]  # (ids int64 (N,), vectors float (N, d))


@dataclass(frozen=True)
class SplitTable:
    """One side of a split.

    Attributes:
        ids: fresh random ids, int64, shape (N,).
        vectors: L2-normalised float32 vectors, shape (N, d), row i belongs to ``ids[i]``.
        source_ids: the corpus id of each row's text (for reading texts and debugging; never written to
            the side's parquet file), int64, shape (N,); -1 when unknown (a split read back from disk).
        from_ood: True for rows that are out-of-domain seed objects (their ``source_ids`` refer to the
            other corpus), shape (N,).
    """

    ids: np.ndarray
    vectors: np.ndarray
    source_ids: np.ndarray
    from_ood: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def dim(self) -> int:
        """Vector dimension of this side."""
        return int(self.vectors.shape[1])


@dataclass(frozen=True)
class Split:
    """A split: two tables, the seeds, and the ground truth.

    Attributes:
        left: the E1 side (S + A-only, plus out-of-domain seed objects if any).
        right: the E2 side (S + B-only, plus out-of-domain seed objects if any).
        seeds: int64 array (n, 2) of (left_id, right_id) seed pairs.
        truth: int64 array (m, 2) of every true (left_id, right_id) pair, seeds included.
        truth_is_seed: bool array (m,), True where the truth pair is a seed.
        alpha: shared fraction used to build the split (None when read back from disk).
        seed: the random seed used (None when read back from disk).
        out_of_domain: True when the seeds come from another corpus (None when read back from disk).
    """

    left: SplitTable
    right: SplitTable
    seeds: np.ndarray
    truth: np.ndarray
    truth_is_seed: np.ndarray
    alpha: float | None = None
    seed: int | None = None
    out_of_domain: bool | None = False

    @property
    def n_seeds(self) -> int:
        """Number of seed pairs."""
        return int(self.seeds.shape[0])

    @property
    def n_shared(self) -> int:
        """Number of true pairs that are not seeds (the recall denominator)."""
        return int((~self.truth_is_seed).sum())

    def seed_index_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Row positions of the seeds: (left row index, right row index), int64 arrays of length n."""
        return _positions(self.left.ids, self.seeds[:, 0]), _positions(self.right.ids, self.seeds[:, 1])

    def truth_index_pairs(self, include_seeds: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Row positions of the true pairs: (left row index, right row index).

        Args:
            include_seeds: keep the seed pairs (default) or drop them.
        """
        pairs = self.truth if include_seeds else self.truth[~self.truth_is_seed]
        return _positions(self.left.ids, pairs[:, 0]), _positions(self.right.ids, pairs[:, 1])


def _positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row position of each of ``wanted`` in ``ids`` (ids unique); raises InputError if one is missing."""
    order = np.argsort(ids, kind="stable")
    pos = np.searchsorted(ids, wanted, sorter=order)
    pos = np.clip(pos, 0, len(ids) - 1)
    found = order[pos]
    missing = ids[found] != wanted
    if missing.any():
        raise InputError(
            f"{int(missing.sum())} id(s) not found in the table (first: {int(wanted[missing][0])}); "
            "seeds/truth must refer to ids present in left/right"
        )
    return found.astype(np.int64)


def _normalise(x: np.ndarray, what: str) -> np.ndarray:
    """Float32 copy of ``x`` with unit-norm rows; raises InputError on zero or non-finite rows."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"{what}: expected a non-empty 2-D array of vectors, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError(f"{what}: vectors hold NaN or infinite values; fix or drop those rows")
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    if (norms == 0).any():
        raise InputError(
            f"{what}: {int((norms == 0).sum())} zero vector(s) cannot be L2-normalised; drop them"
        )
    return (x / norms[:, None]).astype(np.float32)


def _check_corpus(corpus: Corpus, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate one (ids, vectors) pair: 1-D unique integer ids matching the rows of a 2-D array."""
    try:
        ids, x = corpus
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what}: expected a pair (ids, vectors), got {type(corpus).__name__}") from exc
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"{what}: ids must be a 1-D integer array, got dtype {ids.dtype}, shape {ids.shape}")
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] != ids.shape[0]:
        raise InputError(
            f"{what}: {ids.shape[0]} ids but vectors of shape {x.shape}; they must have one row per id"
        )
    if np.unique(ids).shape[0] != ids.shape[0]:
        raise InputError(f"{what}: ids are not unique; each text must appear once per encoder")
    return ids.astype(np.int64), x


def _align(e1: Corpus, e2: Corpus, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of both encoders for the corpus ids they share, sorted by id: (ids, X, Y)."""
    ids1, x = _check_corpus(e1, f"{what} (encoder 1)")
    ids2, y = _check_corpus(e2, f"{what} (encoder 2)")
    common, i1, i2 = np.intersect1d(ids1, ids2, assume_unique=True, return_indices=True)
    if common.shape[0] == 0:
        raise InputError(f"{what}: the two encoders' tables share no id; they must embed the same texts")
    if common.shape[0] < max(ids1.shape[0], ids2.shape[0]):
        log.warning(
            "%s: encoder tables hold %d and %d ids, %d in common; using the common ones",
            what,
            ids1.shape[0],
            ids2.shape[0],
            common.shape[0],
        )
    return common, _normalise(x[i1], f"{what} (encoder 1)"), _normalise(y[i2], f"{what} (encoder 2)")


def make_split(
    vectors_e1: Corpus,
    vectors_e2: Corpus,
    alpha: float,
    n_seeds: int,
    seed: int,
    ood_seed_vectors: tuple[Corpus, Corpus] | None = None,
) -> Split:
    """Build one split by the protocol above.

    Args:
        vectors_e1: (corpus ids, vectors) of the corpus embedded by encoder E1 (left side).
        vectors_e2: (corpus ids, vectors) of the same corpus embedded by encoder E2 (right side).
            Rows are matched by corpus id; ids present on one side only are ignored (with a warning).
        alpha: shared fraction, 0 < alpha < 1; |S| = round(alpha * N).
        n_seeds: number of seed pairs, 1 <= n_seeds <= |S| (in-domain) or <= the other corpus's size.
        seed: random seed; the split is a deterministic function of the inputs and this seed.
        ood_seed_vectors: out-of-domain variant: ((ids, X), (ids, Y)) of another corpus embedded by the
            same E1 and E2; ``n_seeds`` of its objects are drawn at random, added to both tables and used
            as seeds. None (default) draws the seeds from S.

    Returns:
        The :class:`Split`. Vectors are float32 and L2-normalised.

    Raises:
        InputError: bad shapes, duplicate ids, no common ids, zero vectors, or parameters out of range.

    Example:
        >>> split = make_split((ids, X), (ids, Y), alpha=0.3, n_seeds=15, seed=0)  # doctest: +SKIP
    """
    problems = []
    if not 0.0 < float(alpha) < 1.0:
        problems.append(f"alpha must be in (0, 1), got {alpha}")
    if int(n_seeds) < 1:
        problems.append(f"n_seeds must be >= 1, got {n_seeds}")
    if problems:
        raise InputError("; ".join(problems))
    n_seeds = int(n_seeds)
    rng = np.random.default_rng(seed)

    ids, x, y = _align(vectors_e1, vectors_e2, "corpus")
    n = ids.shape[0]
    n_shared = int(round(alpha * n))
    half = (n - n_shared) // 2
    if n_shared < 1 or half < 1:
        raise InputError(
            f"alpha={alpha} on {n} texts gives |S|={n_shared} and {half} per side-only part; "
            "use a larger corpus or an alpha further from 0 and 1"
        )

    perm = rng.permutation(n)
    shared = perm[:n_shared]
    a_only = perm[n_shared : n_shared + half]
    b_only = perm[n_shared + half : n_shared + 2 * half]

    # Objects are numbered 0..n-1 (this corpus) then n..n+n_ood-1 (out-of-domain corpus).
    if ood_seed_vectors is None:
        if n_seeds > n_shared:
            raise InputError(
                f"n_seeds={n_seeds} exceeds the shared part |S|={n_shared}; lower n_seeds or raise alpha"
            )
        seed_objects = shared[rng.choice(n_shared, size=n_seeds, replace=False)]
        ood_ids = np.empty(0, dtype=np.int64)
        x_all, y_all = x, y
        extra: np.ndarray = np.empty(0, dtype=np.int64)
    else:
        try:
            ood_e1, ood_e2 = ood_seed_vectors
        except (TypeError, ValueError) as exc:
            raise InputError(
                "ood_seed_vectors must be a pair ((ids, X), (ids, Y)) for the other corpus"
            ) from exc
        ood_ids, ox, oy = _align(ood_e1, ood_e2, "out-of-domain corpus")
        if ox.shape[1] != x.shape[1] or oy.shape[1] != y.shape[1]:
            raise InputError(
                f"out-of-domain vectors have dims ({ox.shape[1]}, {oy.shape[1]}) but the corpus has "
                f"({x.shape[1]}, {y.shape[1]}); embed both corpora with the same two encoders"
            )
        if n_seeds > ood_ids.shape[0]:
            raise InputError(f"n_seeds={n_seeds} exceeds the out-of-domain corpus size {ood_ids.shape[0]}")
        extra = n + rng.choice(ood_ids.shape[0], size=n_seeds, replace=False)
        seed_objects = extra
        x_all, y_all = np.vstack([x, ox]), np.vstack([y, oy])

    left_objects = np.concatenate([shared, a_only, extra])
    right_objects = np.concatenate([shared, b_only, extra])
    left_objects = left_objects[rng.permutation(left_objects.shape[0])]
    right_objects = right_objects[rng.permutation(right_objects.shape[0])]

    fresh = rng.choice(ID_SPACE, size=left_objects.shape[0] + right_objects.shape[0], replace=False) + 1
    left_ids = fresh[: left_objects.shape[0]].astype(np.int64)
    right_ids = fresh[left_objects.shape[0] :].astype(np.int64)

    n_objects = x_all.shape[0]
    left_id_of = np.full(n_objects, -1, dtype=np.int64)
    right_id_of = np.full(n_objects, -1, dtype=np.int64)
    left_id_of[left_objects] = left_ids
    right_id_of[right_objects] = right_ids

    true_objects = np.concatenate([shared, extra])
    is_seed = np.isin(true_objects, seed_objects)
    truth = np.stack([left_id_of[true_objects], right_id_of[true_objects]], axis=1)
    order = np.argsort(truth[:, 0], kind="stable")  # sorted by left id: the truth's order carries no signal
    truth, is_seed = truth[order], is_seed[order]
    seeds = np.stack([left_id_of[seed_objects], right_id_of[seed_objects]], axis=1)

    all_source = np.concatenate([ids, ood_ids])

    def side(objects: np.ndarray, ids_: np.ndarray, vecs: np.ndarray) -> SplitTable:
        return SplitTable(
            ids=ids_,
            vectors=np.ascontiguousarray(vecs[objects]),
            source_ids=all_source[objects],
            from_ood=objects >= n,
        )

    split = Split(
        left=side(left_objects, left_ids, x_all),
        right=side(right_objects, right_ids, y_all),
        seeds=seeds.astype(np.int64),
        truth=truth.astype(np.int64),
        truth_is_seed=is_seed,
        alpha=float(alpha),
        seed=int(seed),
        out_of_domain=ood_seed_vectors is not None,
    )
    log.info(
        "split seed=%d alpha=%.3f: N=%d, |S|=%d, left=%d x %d, right=%d x %d, seeds=%d%s",
        seed,
        alpha,
        n,
        n_shared,
        len(split.left),
        split.left.dim,
        len(split.right),
        split.right.dim,
        n_seeds,
        " (out-of-domain)" if split.out_of_domain else "",
    )
    return split


def _vector_column(x: np.ndarray) -> pa.ChunkedArray:
    """A (N, d) float array as an Arrow ``list<float32>`` column, one list per row, in chunks of at most
    2**31 - 1 floats (``list`` offsets are int32)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    rows_per_chunk = max((2**31 - 1) // max(int(x.shape[1]), 1), 1)
    chunks = [
        vectors_to_arrow(x[start : start + rows_per_chunk])
        for start in range(0, max(len(x), 1), rows_per_chunk)
    ]
    return pa.chunked_array(chunks, type=pa.list_(pa.float32()))


def _vectors_from_arrow(column: pa.ChunkedArray | pa.Array, what: str) -> np.ndarray:
    """An Arrow list-of-floats column as a (N, d) float32 array; raises InputError if ragged or null."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not (
        pa.types.is_list(column.type)
        or pa.types.is_large_list(column.type)
        or pa.types.is_fixed_size_list(column.type)
    ):
        raise InputError(f"{what}: column '{VECTOR}' must be a list of floats, got {column.type}")
    if column.null_count:
        raise InputError(f"{what}: {column.null_count} null vector(s); drop or fill them")
    n = len(column)
    if n == 0:
        return np.empty((0, 0), dtype=np.float32)
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if lengths.min() != lengths.max() or lengths[0] == 0:
        raise InputError(
            f"{what}: vectors have lengths {lengths.min()}..{lengths.max()}; all must share one dimension > 0"
        )
    flat = pc.list_flatten(column).to_numpy(zero_copy_only=False)
    return flat.astype(np.float32, copy=False).reshape(n, int(lengths[0]))


def load_corpus(data_dir: str | Path, corpus: str, encoder: str) -> Corpus:
    """Read one encoder's embeddings of one corpus from the real-data folder.

    Args:
        data_dir: the data folder (e.g. ``../shared/data``), holding ``<corpus>/<encoder>.parquet``.
        corpus: corpus folder name, e.g. ``wordnet`` or ``debian``.
        encoder: encoder file stem, e.g. ``all-mpnet-base-v2``.

    Returns:
        (ids int64 (N,), vectors float32 (N, d)), in file order.

    Raises:
        InputError: the file is missing or lacks the ``id`` / ``vector`` columns, or vectors are ragged.
    """
    path = Path(data_dir) / corpus / f"{encoder}.parquet"
    if not path.is_file():
        raise InputError(
            f"embedding file {path} not found; check --data-dir, the corpus and the encoder name"
        )
    table = pq.read_table(path)
    missing = {ID, VECTOR} - set(table.column_names)
    if missing:
        raise InputError(
            f"{path}: missing column(s) {sorted(missing)}; expected (id int64, vector list<float32>)"
        )
    ids = table.column(ID).to_numpy().astype(np.int64)
    return ids, _vectors_from_arrow(table.column(VECTOR), str(path))


def write_split(split: Split, folder: str | Path) -> dict[str, Path]:
    """Write a split as four parquet files (overwriting them) in ``folder`` (created if needed).

    Files: ``left.parquet`` and ``right.parquet`` (``id`` int64, ``vector`` list<float32>),
    ``seeds.parquet`` (``left_id``, ``right_id``), ``truth.parquet`` (``left_id``, ``right_id``,
    ``is_seed``). Source ids are not written: nothing in left/right reveals the pairing.

    Returns:
        Mapping of file role (left, right, seeds, truth) to the written path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "left": folder / LEFT_FILE,
        "right": folder / RIGHT_FILE,
        "seeds": folder / SEEDS_FILE,
        "truth": folder / TRUTH_FILE,
    }
    for role, tab in (("left", split.left), ("right", split.right)):
        table = pa.table({ID: pa.array(tab.ids, pa.int64()), VECTOR: _vector_column(tab.vectors)})
        pq.write_table(table, paths[role])
    pq.write_table(
        pa.table(
            {
                LEFT_ID: pa.array(split.seeds[:, 0], pa.int64()),
                RIGHT_ID: pa.array(split.seeds[:, 1], pa.int64()),
            }
        ),
        paths["seeds"],
    )
    pq.write_table(
        pa.table(
            {
                LEFT_ID: pa.array(split.truth[:, 0], pa.int64()),
                RIGHT_ID: pa.array(split.truth[:, 1], pa.int64()),
                IS_SEED: pa.array(split.truth_is_seed, pa.bool_()),
            }
        ),
        paths["truth"],
    )
    log.info("wrote split to %s", folder)
    return paths


def read_split(folder: str | Path) -> Split:
    """Read a split written by :func:`write_split`.

    Source ids are unknown (-1); ``alpha``, ``seed`` and ``out_of_domain`` are None.

    Raises:
        InputError: a file is missing or has the wrong columns.
    """
    folder = Path(folder)

    def read(name: str, columns: list[str]) -> pa.Table:
        path = folder / name
        if not path.is_file():
            raise InputError(f"split file {path} not found; write the split with write_split first")
        table = pq.read_table(path)
        missing = set(columns) - set(table.column_names)
        if missing:
            raise InputError(f"{path}: missing column(s) {sorted(missing)}")
        return table

    sides = []
    for name in (LEFT_FILE, RIGHT_FILE):
        t = read(name, [ID, VECTOR])
        ids = t.column(ID).to_numpy().astype(np.int64)
        sides.append(
            SplitTable(
                ids=ids,
                vectors=_vectors_from_arrow(t.column(VECTOR), str(folder / name)),
                source_ids=np.full(ids.shape[0], -1, dtype=np.int64),
                from_ood=np.zeros(ids.shape[0], dtype=bool),
            )
        )
    s = read(SEEDS_FILE, [LEFT_ID, RIGHT_ID])
    t = read(TRUTH_FILE, [LEFT_ID, RIGHT_ID, IS_SEED])
    seeds = np.stack([s.column(LEFT_ID).to_numpy(), s.column(RIGHT_ID).to_numpy()], axis=1).astype(np.int64)
    truth = np.stack([t.column(LEFT_ID).to_numpy(), t.column(RIGHT_ID).to_numpy()], axis=1).astype(np.int64)
    is_seed = t.column(IS_SEED).to_numpy(zero_copy_only=False).astype(bool)
    return Split(
        left=sides[0],
        right=sides[1],
        seeds=seeds.reshape(-1, 2),
        truth=truth.reshape(-1, 2),
        truth_is_seed=is_seed,
        out_of_domain=None,
    )
