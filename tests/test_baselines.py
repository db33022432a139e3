"""Tests of the classical baselines (benchmarks.harness.baselines) on tiny synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.harness.baselines import (
    BASELINES,
    Links,
    csls_mutual_search,
    mutual_nearest_links,
    oracle_links,
    procrustes_links,
    procrustes_map,
    self_learning_links,
)
from veclink_spark.errors import InputError

N, D = 200, 8
SEEDS = np.arange(15)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def rotated_pair(d_out: int = D, noise: float = 0.01, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Y = X Q + noise, Q orthogonal (d_out == D) or with orthonormal rows (d_out > D); row i <-> row i."""
    rng = np.random.default_rng(seed)
    x = unit(rng.normal(size=(N, D)))
    q, _ = np.linalg.qr(rng.normal(size=(d_out, D)))  # (d_out, D), orthonormal columns
    y = unit(x @ q.T + noise * rng.normal(size=(N, d_out)))
    return x, y


def n_correct(links: Links) -> int:
    return int((links.left_index == links.right_index).sum())


def check_one_to_one(links: Links, n_left: int, n_right: int) -> None:
    assert links.left_index.dtype == np.int64 and links.right_index.dtype == np.int64
    assert len(links.left_index) == len(links.right_index) == len(links.score)
    assert np.unique(links.left_index).size == len(links) and np.unique(links.right_index).size == len(links)
    assert links.left_index.size == 0 or (
        links.left_index.max() < n_left and links.right_index.max() < n_right
    )
    assert not np.isin(links.left_index, SEEDS).any() and not np.isin(links.right_index, SEEDS).any()


@pytest.mark.parametrize("d_out", [D, 12])
def test_procrustes_and_self_learning_recover_a_rotation(d_out: int) -> None:
    x, y = rotated_pair(d_out)
    for fn in (procrustes_links, self_learning_links):
        links = fn(x, y, SEEDS, SEEDS)
        check_one_to_one(links, N, N)
        assert n_correct(links) > 0.9 * (N - SEEDS.size), fn.__name__
        assert n_correct(links) > 0.9 * len(links), fn.__name__


@pytest.fixture(scope="module")
def related_links() -> dict[str, Links]:
    """Every baseline's links on the rotated pair, computed once for the module."""
    x, y = rotated_pair()
    return {name: fn(x, y, SEEDS, SEEDS) for name, fn in BASELINES.items()}


def test_every_baseline_returns_valid_links_and_most_recover_a_rotation(
    related_links: dict[str, Links],
) -> None:
    for name, links in related_links.items():
        check_one_to_one(links, N, N)
        assert np.isfinite(links.score).all(), name
        if name in ("procrustes", "least_squares", "relative", "self_learning"):
            assert n_correct(links) > 0.9 * (N - SEEDS.size), name


def test_unrelated_sides_give_no_correct_links_and_lower_scores(related_links: dict[str, Links]) -> None:
    x, _ = rotated_pair()
    y = unit(np.random.default_rng(5).normal(size=(N, D)))
    for name, fn in BASELINES.items():
        links = fn(x, y, SEEDS, SEEDS)
        assert n_correct(links) <= 0.05 * (N - SEEDS.size), name
        if len(links):
            assert float(np.median(links.score)) < float(np.median(related_links[name].score)), name


def test_self_learning_reports_its_iterations() -> None:
    x, y = rotated_pair()
    links = self_learning_links(x, y, SEEDS, SEEDS, max_iter=30)
    assert links.info["converged"] is True
    assert 2 <= links.info["iterations"] <= 31
    assert len(links.info["dictionary_sizes"]) == links.info["iterations"]


def test_self_learning_starts_from_the_seed_subspace_when_seeds_are_few() -> None:
    # 5 seeds in 8-d: the textbook Procrustes completion is arbitrary; the truncated map is not.
    x, y = rotated_pair()
    seeds = np.arange(5)
    xm_full, _ = procrustes_map(x, y, seeds, seeds)
    xm_trunc, _ = procrustes_map(x, y, seeds, seeds, truncate_rank=True)
    assert np.linalg.matrix_rank(xm_trunc) == 5 and np.linalg.matrix_rank(xm_full) == D
    np.testing.assert_allclose(xm_trunc[seeds], y[seeds], atol=0.05)  # fits the seeds themselves


def test_oracle_fits_all_true_pairs() -> None:
    x, y = rotated_pair(noise=0.05)
    all_rows = np.arange(N)
    for method in ("procrustes", "procrustes_centred", "least_squares"):
        links = oracle_links(method, x, y, all_rows, all_rows, SEEDS, SEEDS)
        assert n_correct(links) > 0.95 * (N - SEEDS.size), method
    with pytest.raises(InputError, match="oracle method"):
        oracle_links("cca", x, y, all_rows, all_rows, SEEDS, SEEDS)


def test_mutual_nearest_links_by_hand() -> None:
    a = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]], np.float32)
    b = np.array([[0.9, 0.1], [0.1, 0.9]], np.float32)
    links = mutual_nearest_links(a, b)
    assert sorted(zip(links.left_index.tolist(), links.right_index.tolist(), strict=True)) == [(0, 0), (1, 1)]
    excluded = mutual_nearest_links(a, b, exclude_left=np.array([0]))
    assert sorted(zip(excluded.left_index.tolist(), excluded.right_index.tolist(), strict=True)) == [
        (1, 1),
        (2, 0),
    ]
    csls = mutual_nearest_links(a, b, csls_k=1)
    assert len(csls) == 2 and np.isfinite(csls.score).all()
    with pytest.raises(InputError, match="dimension"):
        mutual_nearest_links(a, b[:, :1])


def test_bad_seed_indices_raise() -> None:
    x, y = rotated_pair()
    with pytest.raises(InputError, match="differ in length"):
        procrustes_links(x, y, np.arange(3), np.arange(4))
    with pytest.raises(InputError, match="out of range"):
        procrustes_links(x, y, np.array([0, N]), np.array([0, 1]))


def test_approximate_csls_search_matches_exact_when_it_probes_every_list_and_audits_its_misses() -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(30, 16))
    x = unit(centres[rng.integers(0, 30, 2500)] + 0.3 * rng.normal(size=(2500, 16)))
    y = unit(x + 0.05 * rng.normal(size=x.shape))
    exact = csls_mutual_search(x, y, 10)
    every: dict[str, float] = {}
    whole = csls_mutual_search(x, y, 10, nprobe=int(np.sqrt(len(y))), audit=every)  # all 50 lists
    assert every == {"r_exact": 1.0, "nearest_exact": 1.0}
    assert all(np.array_equal(e, w) for e, w in zip(exact[:2], whole[:2], strict=True))
    few: dict[str, float] = {}
    rows, cols, _ = csls_mutual_search(x, y, 10, nprobe=1, audit=few)
    assert 0.0 < few["r_exact"] < 1.0 and 0.5 < few["nearest_exact"] <= 1.0  # one list of 50 misses some
    approx_pairs = set(zip(rows.tolist(), cols.tolist(), strict=True))
    exact_pairs = set(zip(exact[0].tolist(), exact[1].tolist(), strict=True))
    assert len(approx_pairs & exact_pairs) > 0.5 * len(rows)


def test_ceiling_beyond_exact_rows_agrees_with_the_exact_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.harness import ceiling as ceiling_module

    rng = np.random.default_rng(4)
    centres = rng.normal(size=(20, 24))
    x = unit(centres[rng.integers(0, 20, 3000)] + 0.4 * rng.normal(size=(3000, 24)))
    q, _ = np.linalg.qr(rng.normal(size=(24, 24)))
    y = unit(x[:2000] @ q + 0.05 * rng.normal(size=(2000, 24)))
    truth = np.arange(1500)  # rows 0-1499 of each side are pairs; the rest have no partner
    exact = ceiling_module.ceiling(x, y, truth, truth)
    monkeypatch.setattr(ceiling_module, "EXACT_ROWS", 1000)
    monkeypatch.setattr(ceiling_module, "DENSE_CELLS", 0)
    approx = ceiling_module.ceiling(x, y, truth, truth)
    assert exact["search"] == "exact" and "k-means cells" in approx["search"]
    assert exact["f1"] > 0.5 and abs(approx["f1"] - exact["f1"]) < 0.03
