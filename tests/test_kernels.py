"""Numeric kernels on tiny hand-made arrays."""

from __future__ import annotations

import numpy as np

from veclink_spark.kernels.blocking import block_best_matches
from veclink_spark.kernels.centre import SIM_DECIMALS, centre_rows, normalise_rows, table_mean
from veclink_spark.kernels.maps import (
    CROSS_DECIMALS,
    bag_flags,
    csls_block,
    csls_score,
    keep_mask,
    procrustes_map,
    seed_consistency,
)
from veclink_spark.kernels.promotion import CUT_DECIMALS, greedy_one_to_one, mixture_cut, otsu_threshold
from veclink_spark.kernels.samples import hash_sample, sample_keys
from veclink_spark.kernels.signatures import (
    anchor_signatures,
    distribution_descriptors,
    nearest_keys,
    sample_views,
)


def test_signatures_are_unit_and_scale_free() -> None:
    rng = np.random.default_rng(0)
    x = normalise_rows(rng.normal(size=(20, 6)))
    anchors = x[:5]
    s, d = anchor_signatures(x, anchors, 0.8, "row")
    assert np.allclose(np.linalg.norm(s, axis=1), 1.0)
    assert np.allclose(d[np.arange(5), np.arange(5)], 0.0, atol=1e-6)
    # Row centring: each signature sums to zero.
    assert np.allclose(s.sum(axis=1), 0.0, atol=1e-9)


def test_block_best_matches_breaks_ties_by_smaller_id() -> None:
    sig = np.array([[1.0, 0.0], [1.0, 0.0]])
    ids_l = np.array([7, 3])
    ids_r = np.array([9, 4])
    il, best_r, _, ir, best_l, _ = block_best_matches(sig, ids_l, sig, ids_r)
    assert list(il) == [3, 7] and list(best_r) == [4, 4]
    assert list(ir) == [4, 9] and list(best_l) == [3, 3]


def test_block_best_matches_in_slices_equals_the_whole_matrix() -> None:
    # Coarse signatures (many tied similarities) and slices of 1-7 left rows: the same best matches,
    # ties included, as one slice holding the whole block.
    rng = np.random.default_rng(4)
    sig_l = rng.integers(0, 3, size=(40, 3)).astype(float)
    sig_r = rng.integers(0, 3, size=(25, 3)).astype(float)
    ids_l = rng.permutation(1000)[:40]
    ids_r = rng.permutation(1000)[:25]
    whole = block_best_matches(sig_l, ids_l, sig_r, ids_r, max_entries=40 * 25)
    for rows in (1, 3, 7):
        part = block_best_matches(sig_l, ids_l, sig_r, ids_r, max_entries=rows * 25)
        for a, b in zip(whole, part, strict=True):
            assert np.array_equal(a, b)
    assert len(np.unique(whole[4])) < 25  # the case has ties to break


def test_otsu_splits_two_modes() -> None:
    values = np.array([1, 2, 3, 20, 21, 22], dtype=float)
    counts = np.array([50, 40, 30, 5, 6, 4])
    assert otsu_threshold(values, counts) == 20.0
    assert otsu_threshold(np.array([4.0]), np.array([3])) == 4.0


def test_greedy_one_to_one_respects_used_ids_and_order() -> None:
    left = np.array([1, 1, 2, 3])
    right = np.array([10, 11, 10, 12])
    score = np.array([0.9, 0.8, 0.95, 0.5])
    keep = greedy_one_to_one(left, right, score, np.zeros(4), used_left={3}, used_right=set())
    assert sorted(zip(left[keep].tolist(), right[keep].tolist(), strict=False)) == [(1, 11), (2, 10)]


def test_views_guard_degenerate_kmeans() -> None:
    rng = np.random.default_rng(0)
    a = normalise_rows(rng.normal(size=(30, 4)))
    # 30 anchors, d_max 16: ceil(30/16)=2 clusters <= rho=2 -> would make identical views: not used.
    views, branch = sample_views(
        a,
        a,
        15,
        16,
        base_views=5,
        growth=0.5,
        view_fraction=0.3,
        min_view_size=4,
        max_view_size=64,
        kmeans_overlap=2,
        bandwidth=1.0,
        rng=rng,
    )
    assert branch == "random" and len(views) >= 5
    views, branch = sample_views(
        a,
        a,
        15,
        4,
        base_views=5,
        growth=0.5,
        view_fraction=0.3,
        min_view_size=4,
        max_view_size=64,
        kmeans_overlap=2,
        bandwidth=1.0,
        rng=np.random.default_rng(1),
    )
    assert branch == "kmeans" and len(views) == 8
    # Each anchor joins its two nearest clusters.
    counts = np.bincount(np.concatenate([v.anchors for v in views]), minlength=30)
    assert (counts == 2).all()


def test_bag_flags_are_deterministic_and_match_fraction() -> None:
    left = np.arange(2000)
    right = np.arange(2000) + 5
    f1 = bag_flags(left, right, 4, 0.75, salt=3)
    f2 = bag_flags(left, right, 4, 0.75, salt=3)
    assert (f1 == f2).all()
    assert abs(f1.mean() - 0.75) < 0.03
    assert not (f1 == bag_flags(left, right, 4, 0.75, salt=4)).all()


def test_procrustes_recovers_a_rotation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 5))
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    w = procrustes_map(x.T @ (x @ q))
    assert np.allclose(w, q, atol=1e-8)


def test_seed_consistency_high_for_isometric_copies() -> None:
    rng = np.random.default_rng(0)
    x = normalise_rows(rng.normal(size=(15, 8)))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert seed_consistency(x, x @ q) > 0.99
    assert seed_consistency(x, normalise_rows(rng.normal(size=(15, 8)))) < 0.5


def test_centring_removes_the_mean_and_is_order_independent() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)) + np.array([3.0, 0, 0, 0, 0, 0])  # a direction every row shares
    units = normalise_rows(x)
    mean = table_mean(units.sum(axis=0), len(units))
    assert np.linalg.norm(mean) > 0.7
    # Summed in another order (as executors do, batch by batch), the rounded mean is the same.
    parts = sum(units[i : i + 37].sum(axis=0) for i in range(0, 400, 37))
    assert np.array_equal(table_mean(parts, 400), mean)
    c = centre_rows(x, mean)
    assert np.allclose(c.mean(axis=0), 0.0, atol=1e-9)
    assert np.allclose(c + mean, units)


def test_keep_mask_is_a_function_of_the_pair_and_keeps_the_share() -> None:
    left = np.arange(1000, 1400, dtype=np.int64)
    right = np.arange(7, 307, dtype=np.int64)
    m = keep_mask(left, right, 0.2, salt=11)
    assert abs(m.mean() - 0.2) < 0.01
    # Same pair, same fate, whatever else is in the block (blocks and engines differ in members).
    sub = keep_mask(left[[5, 300, 17]], right[[250, 3]], 0.2, salt=11)
    assert np.array_equal(sub, m[np.ix_([5, 300, 17], [250, 3])])
    # Another salt (another round) draws another share; keep = 1 keeps everything.
    assert (keep_mask(left, right, 0.2, salt=12) != m).mean() > 0.2
    assert keep_mask(left, right, 1.0, salt=11).all()
    words = np.array(["a", "b", "c"], dtype=object)
    assert np.array_equal(keep_mask(words, words, 0.5, 3), keep_mask(words, words, 0.5, 3))


def test_csls_block_with_dropout_picks_the_best_kept_pair() -> None:
    rng = np.random.default_rng(1)
    sl, sr = (
        normalise_rows(rng.normal(size=(40, 5))),
        normalise_rows(rng.normal(size=(30, 5))),
    )
    il, ir = np.arange(40, dtype=np.int64), np.arange(100, 130, dtype=np.int64)
    best = csls_block(il, sl, ir, sr, k=3, keep=0.3, salt=5)
    a, ab, b, ba = best.left, best.left_best, best.right, best.right_best
    mask = keep_mask(il, ir, 0.3, 5)
    assert len(a) > 30 and len(b) > 20
    assert mask[a, ab - 100].all() and mask[ba, b - 100].all()
    # CSLS by hand: r = mean of each row's 3 highest similarities in the block, before the dropout.
    g = np.round(sl @ sr.T, SIM_DECIMALS)
    r_left = np.sort(g, axis=1)[:, -3:].mean(axis=1)
    r_right = np.sort(g, axis=0)[-3:, :].mean(axis=0)
    np.testing.assert_allclose(best.left_r, r_left[a], atol=1e-9)
    scores = np.where(mask, 2 * g - r_left[:, None] - r_right[None, :], -np.inf)
    assert np.array_equal(ab, ir[scores[a].argmax(axis=1)])


def test_csls_score_gives_the_block_score_back_with_the_block_r() -> None:
    rng = np.random.default_rng(2)
    sl = normalise_rows(rng.normal(size=(50, 6)))
    sr = normalise_rows(rng.normal(size=(40, 6)))
    best = csls_block(np.arange(50), sl, np.arange(40), sr, k=4)
    r_right = dict(zip(best.right.tolist(), best.right_r.tolist(), strict=True))
    rr = np.array([r_right[b] for b in best.left_best.tolist()])
    again = csls_score(best.left_cos, best.left_r, rr)
    assert np.array_equal(again, best.left_score)  # bit for bit
    assert np.array_equal(best.left_cos, np.round(sl @ sr.T, SIM_DECIMALS)[best.left, best.left_best])
    # A larger r (a more crowded neighbourhood elsewhere) lowers the score by as much.
    lower = csls_score(best.left_cos, best.left_r + 0.1, rr)
    np.testing.assert_allclose(lower, best.left_score - 0.1)


def test_procrustes_on_few_rounded_pairs_keeps_only_their_directions() -> None:
    # 15 pairs in 384 dimensions determine 15 directions; the rounding the engine applies (so both
    # backends fit the same map) must not turn its noise into 369 arbitrary extra directions.
    rng = np.random.default_rng(2)
    x = normalise_rows(rng.normal(size=(15, 384)))
    y = normalise_rows(rng.normal(size=(15, 384)))
    w = procrustes_map(x.T @ y, decimals=CROSS_DECIMALS)
    assert np.linalg.matrix_rank(w) == 15
    full = procrustes_map(rng.normal(size=(384, 384)), decimals=CROSS_DECIMALS)
    assert np.linalg.matrix_rank(full) == 384


def test_mixture_cut_separates_two_humps_and_leaves_one_whole() -> None:
    rng = np.random.default_rng(0)
    # 600 'right' links around 0.55 and 900 'wrong' ones around 0.25 (the alpha 0.15 shape).
    right, wrong = rng.normal(0.55, 0.06, 600), rng.normal(0.25, 0.06, 900)
    cut = mixture_cut(np.concatenate([wrong, right]), min_separation=2.0)
    assert cut is not None and cut.applies
    assert 0.35 < cut.threshold < 0.45
    assert abs(cut.upper_weight - 0.4) < 0.05
    kept_right = (np.round(right, CUT_DECIMALS) >= cut.threshold).mean()
    kept_wrong = (np.round(wrong, CUT_DECIMALS) >= cut.threshold).mean()
    assert kept_right > 0.95 and kept_wrong < 0.05
    # Input order does not matter (the engines list links in different orders).
    shuffled = rng.permutation(np.concatenate([wrong, right]))
    assert mixture_cut(shuffled, min_separation=2.0) == cut
    # One skewed hump (nearly every link right): a mixture still fits but is not separated: no cut.
    one = 0.7 - rng.gamma(2.0, 0.05, 1500)
    flat = mixture_cut(one, min_separation=2.0)
    assert flat is not None and not flat.applies and flat.separation < 2.0
    # Too few links: no mixture at all.
    assert mixture_cut(right[:10], min_separation=2.0) is None


def test_mixture_cut_does_not_apply_to_a_lone_outlier() -> None:
    # A tight hump and one far link: EM gives the outlier a component of its own, with a near-zero
    # spread and a huge separation (a million-row fit kept 1 of 4,361 links so). Not a cut.
    rng = np.random.default_rng(0)
    sims = np.concatenate([rng.normal(0.3, 0.002, 4360), [0.7171]])
    cut = mixture_cut(sims, min_separation=2.0)
    assert cut is not None and cut.separation > 100 and cut.threshold == 0.7171
    assert not cut.applies
    # Fifty links above it are a hump: the same shape then cuts.
    humps = np.concatenate([rng.normal(0.3, 0.002, 4360), rng.normal(0.7, 0.002, 50)])
    hump = mixture_cut(humps, min_separation=2.0)
    assert hump is not None and hump.applies


def test_distribution_descriptors_ignore_rotations_and_the_rows_own_similarity() -> None:
    rng = np.random.default_rng(2)
    x = normalise_rows(rng.normal(size=(300, 24)))
    ids = rng.permutation(10_000)[:300]
    q, _ = np.linalg.qr(rng.normal(size=(24, 24)))
    pick = hash_sample(ids, 120)
    a = distribution_descriptors(x, ids, x[pick], ids[pick], 40)
    b = distribution_descriptors(x @ q, ids, (x @ q)[pick], ids[pick], 40)
    assert a.shape[0] == 300 and a.shape[1] <= 40
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0)
    # A rotated copy of the table (another 'encoder' that keeps all geometry) gives the same descriptors.
    assert np.allclose(a, b, atol=1e-8)
    # A sampled row does not see itself (similarity 1): under a foreign id it would, and its descriptor
    # would change; its own one stays finite.
    r = pick[0]
    own = distribution_descriptors(x[[r]], ids[[r]], x[pick], ids[pick], 40)
    seen = distribution_descriptors(x[[r]], np.array([-1]), x[pick], ids[pick], 40)
    assert np.isfinite(own).all() and not np.allclose(own, seen)


def test_hash_sample_depends_on_ids_only() -> None:
    ids = np.arange(1000, 2000)
    pick = hash_sample(ids, 50)
    shuffled = np.random.default_rng(0).permutation(ids)
    assert sorted(ids[pick].tolist()) == sorted(shuffled[hash_sample(shuffled, 50)].tolist())
    # Sequential ids still give a spread-out sample (the keys are mixed, not the ids themselves).
    assert ids[pick].min() < 1200 and ids[pick].max() > 1800
    keys = sample_keys(np.array(["a", "b", "c"]))
    assert keys.dtype == np.int64 and (keys >= 0).all() and len(set(keys.tolist())) == 3


def _plain_csls(il, sl, ir, sr, k, keep=1.0, salt=0):
    """csls_block as one whole-matrix computation (full partitions and argmaxes): the reference the
    run-based top k and the chunked argmax must reproduce bit for bit."""
    ol, orr = np.argsort(il, kind="stable"), np.argsort(ir, kind="stable")
    g = np.round(np.asarray(sl[ol], np.float64) @ np.asarray(sr[orr], np.float64).T, SIM_DECIMALS)

    def top_mean(m):
        kk = min(k, m.shape[1])
        top = np.partition(m, m.shape[1] - kk, axis=1)[:, m.shape[1] - kk :]
        return np.round(np.sort(top, axis=1).mean(axis=1), SIM_DECIMALS)

    rl, rr = top_mean(g), top_mean(g.T)
    c = csls_score(g, rl[:, None], rr[None, :])
    if keep < 1.0:
        c = np.where(keep_mask(il[ol], ir[orr], keep, salt), c, -np.inf)
    return rl, rr, c.argmax(axis=1), c.argmax(axis=0), c


def test_csls_block_equals_the_whole_matrix_computation_ties_and_all() -> None:
    rng = np.random.default_rng(11)
    for trial in range(40):
        nl, nr = (int(v) for v in rng.integers(1, 400, 2))
        d = 8
        x = rng.normal(size=(nl + nr, d))
        if trial % 3 == 0:
            x = np.round(x)  # coarse values: many tied similarities
        x = normalise_rows(x + (trial % 2) * 3.0).astype(np.float32)  # some blocks crowded
        sl, sr = x[:nl], x[nl:]
        il, ir = rng.choice(10**6, nl, replace=False), rng.choice(10**6, nr, replace=False)
        k = int(rng.choice([1, 3, 10, 30]))
        keep = 1.0 if trial % 4 else 0.3
        b = csls_block(il, sl, ir, sr, k, keep, trial)
        rl, rr, bl, br, c = _plain_csls(il, sl, ir, sr, k, keep, trial)
        okl, okr = np.isfinite(c[np.arange(nl), bl]), np.isfinite(c[br, np.arange(nr)])
        assert rl[okl].tobytes() == b.left_r.tobytes() and rr[okr].tobytes() == b.right_r.tobytes()
        assert c[np.arange(nl), bl][okl].tobytes() == b.left_score.tobytes()
        assert c[br, np.arange(nr)][okr].tobytes() == b.right_score.tobytes()
        assert (np.sort(ir)[bl][okl] == b.left_best).all() and (np.sort(il)[br][okr] == b.right_best).all()


def test_nearest_keys_are_a_stable_sorts_first() -> None:
    rng = np.random.default_rng(12)
    for ties in (False, True):
        dist = rng.random((200, 50))
        if ties:
            dist = np.round(dist * 4) / 4
        for probes in (1, 3, 7, 9, 60):
            want = np.argsort(dist, axis=1, kind="stable")[:, : min(probes, 50)]
            assert (nearest_keys(dist, probes) == want).all()
