"""Tests of the split protocol (veclink_spark.splits), on tiny synthetic corpora."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from veclink_spark.errors import InputError
from veclink_spark.splits import load_corpus, make_split, read_split, write_split

N, D1, D2 = 200, 8, 6


def corpus(
    n: int = N, offset: int = 1000, seed: int = 1
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Two 'encoders' of one corpus: ids in shuffled order on each side, random vectors."""
    rng = np.random.default_rng(seed)
    ids = offset + np.arange(n, dtype=np.int64)
    x = rng.normal(size=(n, D1))
    y = rng.normal(size=(n, D2))
    p1, p2 = rng.permutation(n), rng.permutation(n)  # encoder files need not share a row order
    return (ids[p1], x[p1]), (ids[p2], y[p2])


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_sizes_follow_alpha_and_seeds_are_in_truth() -> None:
    e1, e2 = corpus()
    split = make_split(e1, e2, alpha=0.3, n_seeds=15, seed=0)
    assert split.truth.shape == (60, 2)  # round(0.3 * 200)
    assert len(split.left) == 60 + 70 and len(split.right) == 60 + 70  # rest 140 split in equal halves
    assert split.n_seeds == 15 and split.truth_is_seed.sum() == 15 and split.n_shared == 45
    truth_pairs = set(map(tuple, split.truth.tolist()))
    assert set(map(tuple, split.seeds.tolist())) <= truth_pairs
    flagged = set(map(tuple, split.truth[split.truth_is_seed].tolist()))
    assert flagged == set(map(tuple, split.seeds.tolist()))


def test_odd_rest_keeps_halves_equal() -> None:
    e1, e2 = corpus(n=101)
    split = make_split(e1, e2, alpha=0.2, n_seeds=3, seed=0)
    assert split.truth.shape[0] == 20 and len(split.left) == len(split.right) == 20 + 40


def test_ids_fresh_unique_and_independent_of_sides() -> None:
    e1, e2 = corpus()
    split = make_split(e1, e2, alpha=0.3, n_seeds=15, seed=0)
    left, right = split.left.ids, split.right.ids
    assert left.dtype == np.int64 and right.dtype == np.int64
    assert np.unique(left).size == left.size and np.unique(right).size == right.size
    assert np.intersect1d(left, right).size == 0
    assert np.intersect1d(np.concatenate([left, right]), e1[0]).size == 0  # not the corpus ids
    assert left.min() >= 1 and max(left.max(), right.max()) < 2**53
    # Rows are shuffled independently: true pairs do not sit at the same row position on both sides.
    li, ri = split.truth_index_pairs()
    assert (li == ri).mean() < 0.2
    assert not np.all(np.diff(split.left.source_ids) > 0)


def test_truth_is_correct_by_construction() -> None:
    (ids1, x), (ids2, y) = corpus()
    split = make_split((ids1, x), (ids2, y), alpha=0.3, n_seeds=15, seed=3)
    li, ri = split.truth_index_pairs()
    src_l, src_r = split.left.source_ids[li], split.right.source_ids[ri]
    assert np.array_equal(src_l, src_r)
    # The vectors stored for a truth pair are those of the same corpus text, normalised.
    x_by_id = dict(zip(ids1.tolist(), unit(x), strict=True))
    y_by_id = dict(zip(ids2.tolist(), unit(y), strict=True))
    for k in range(len(li)):
        np.testing.assert_allclose(split.left.vectors[li[k]], x_by_id[int(src_l[k])], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(split.right.vectors[ri[k]], y_by_id[int(src_r[k])], rtol=1e-5, atol=1e-6)
    # Non-shared texts appear on one side only.
    only_left = np.setdiff1d(split.left.source_ids, src_l)
    assert np.intersect1d(only_left, split.right.source_ids).size == 0


def test_vectors_are_float32_unit_norm() -> None:
    e1, e2 = corpus()
    split = make_split(e1, e2, alpha=0.3, n_seeds=5, seed=0)
    for side in (split.left, split.right):
        assert side.vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(side.vectors, axis=1), 1.0, atol=1e-5)
    assert split.left.dim == D1 and split.right.dim == D2


def test_deterministic_for_a_seed_and_varies_with_it() -> None:
    e1, e2 = corpus()
    a = make_split(e1, e2, alpha=0.3, n_seeds=15, seed=7)
    b = make_split(e1, e2, alpha=0.3, n_seeds=15, seed=7)
    c = make_split(e1, e2, alpha=0.3, n_seeds=15, seed=8)
    for f in ("ids", "vectors", "source_ids"):
        assert np.array_equal(getattr(a.left, f), getattr(b.left, f))
        assert np.array_equal(getattr(a.right, f), getattr(b.right, f))
    assert np.array_equal(a.seeds, b.seeds) and np.array_equal(a.truth, b.truth)
    assert not np.array_equal(a.left.ids, c.left.ids)
    shared_a = set(a.left.source_ids[a.truth_index_pairs()[0]].tolist())
    shared_c = set(c.left.source_ids[c.truth_index_pairs()[0]].tolist())
    assert shared_a != shared_c


def test_out_of_domain_seeds_are_added_to_both_sides() -> None:
    e1, e2 = corpus()
    o1, o2 = corpus(n=50, offset=0, seed=9)  # another corpus; its ids may collide with nothing or anything
    split = make_split(e1, e2, alpha=0.3, n_seeds=15, seed=0, ood_seed_vectors=(o1, o2))
    assert split.out_of_domain
    assert len(split.left) == 60 + 70 + 15 and len(split.right) == 60 + 70 + 15
    assert split.truth.shape[0] == 75 and split.truth_is_seed.sum() == 15 and split.n_shared == 60
    sl, sr = split.seed_index_pairs()
    assert split.left.from_ood[sl].all() and split.right.from_ood[sr].all()
    assert split.left.from_ood.sum() == 15 and split.right.from_ood.sum() == 15
    assert np.array_equal(split.left.source_ids[sl], split.right.source_ids[sr])
    # In-domain truth pairs are never out-of-domain rows.
    li, _ = split.truth_index_pairs(include_seeds=False)
    assert not split.left.from_ood[li].any()


def test_out_of_domain_dimension_mismatch_is_an_input_error() -> None:
    e1, e2 = corpus()
    (oi, ox), (oi2, oy) = corpus(n=50, seed=9)
    with pytest.raises(InputError, match="same two encoders"):
        make_split(e1, e2, 0.3, 5, 0, ood_seed_vectors=((oi, ox[:, :4]), (oi2, oy)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.2}, "alpha"),
        ({"n_seeds": 0}, "n_seeds"),
        ({"n_seeds": 61}, "exceeds"),
    ],
)
def test_bad_parameters_raise(kwargs: dict[str, float], message: str) -> None:
    e1, e2 = corpus()
    args = {"alpha": 0.3, "n_seeds": 15, "seed": 0, **kwargs}
    with pytest.raises(InputError, match=message):
        make_split(e1, e2, **args)  # type: ignore[arg-type]


def test_duplicate_ids_and_zero_vectors_raise() -> None:
    (ids, x), e2 = corpus()
    dup = ids.copy()
    dup[1] = dup[0]
    with pytest.raises(InputError, match="not unique"):
        make_split((dup, x), e2, 0.3, 5, 0)
    x0 = x.copy()
    x0[3] = 0.0
    with pytest.raises(InputError, match="zero vector"):
        make_split((ids, x0), e2, 0.3, 5, 0)


def test_write_and_read_round_trip(tmp_path: Path) -> None:
    e1, e2 = corpus()
    split = make_split(e1, e2, alpha=0.3, n_seeds=15, seed=0)
    paths = write_split(split, tmp_path / "s")
    left = pq.read_table(paths["left"])
    assert left.schema.field("id").type == pa.int64()
    assert left.schema.field("vector").type == pa.list_(pa.float32())
    assert left.column_names == ["id", "vector"]  # nothing that reveals the pairing
    assert pq.read_table(paths["seeds"]).column_names == ["left_id", "right_id"]
    assert pq.read_table(paths["truth"]).column_names == ["left_id", "right_id", "is_seed"]
    back = read_split(tmp_path / "s")
    assert np.array_equal(back.left.ids, split.left.ids)
    assert np.array_equal(back.left.vectors, split.left.vectors)
    assert np.array_equal(back.right.vectors, split.right.vectors)
    assert np.array_equal(back.seeds, split.seeds) and np.array_equal(back.truth, split.truth)
    assert np.array_equal(back.truth_is_seed, split.truth_is_seed)


def test_load_corpus_reads_and_validates(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    pq.write_table(
        pa.table(
            {
                "id": pa.array([5, 6], pa.int64()),
                "vector": pa.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], pa.list_(pa.float32())),
            }
        ),
        tmp_path / "c" / "enc.parquet",
    )
    ids, x = load_corpus(tmp_path, "c", "enc")
    assert ids.tolist() == [5, 6] and x.shape == (2, 3) and x.dtype == np.float32
    pq.write_table(
        pa.table(
            {
                "id": pa.array([5, 6], pa.int64()),
                "vector": pa.array([[1.0, 0.0], [0.0, 1.0, 0.0]], pa.list_(pa.float32())),
            }
        ),
        tmp_path / "c" / "ragged.parquet",
    )
    with pytest.raises(InputError, match="share one dimension"):
        load_corpus(tmp_path, "c", "ragged")
    with pytest.raises(InputError, match="not found"):
        load_corpus(tmp_path, "c", "missing")


def test_load_corpus_on_real_data(shared_data: Path) -> None:
    ids, x = load_corpus(shared_data, "debian", "all-MiniLM-L6-v2")
    assert ids.shape[0] == x.shape[0] > 0 and x.shape[1] == 384
    np.testing.assert_allclose(np.linalg.norm(x[:50], axis=1), 1.0, atol=1e-4)
