"""The label-free precision estimate (veclink_spark.precision): a known answer on a synthetic run, a
chance matching estimated near zero, a weak matching of small tables not overestimated, the per-link
estimate ordered by score, and the min_precision cut of a run."""

from __future__ import annotations

import numpy as np
import pytest

from veclink_spark.kernels.centre import centred_table
from veclink_spark.kernels.maps import procrustes_map
from veclink_spark.precision import _column_top_mean, _top_mean, _transposed, csls_mutual, estimate_precision
from veclink_spark.synthetic import make_pair

try:
    from synthetic_runs import FAST, link_pair
except ImportError:  # tests/ became a package
    from tests.synthetic_runs import FAST, link_pair


@pytest.fixture(scope="module")
def pair():
    return make_pair(n_objects=2000, alpha=0.3, n_seeds=15, seed=4)


@pytest.fixture(scope="module")
def run(pair):
    return link_pair(pair, FAST)


def _pairs(df) -> set[tuple[int, int]]:
    return set(zip(df["left_id"].tolist(), df["right_id"].tolist(), strict=True))


def test_known_answer_on_a_syntheticlink_pair(pair, run) -> None:
    links, summary = run
    truth = set(zip(pair.truth_left.tolist(), pair.truth_right.tolist(), strict=True))
    got = links[~links["is_seed"]]
    right = np.array([p in truth for p in zip(got["left_id"], got["right_id"], strict=True)])
    measured = right.mean()
    assert summary["estimated_precision"] is not None
    assert abs(summary["estimated_precision"] - measured) <= 0.05, (summary["estimated_precision"], measured)
    # the 700 rows a side without a partner, estimated from the matches alone
    partnerless = len(pair.left_ids) - len(pair.truth_left)
    assert abs(summary["estimated_partnerless_rows"]["left"] - partnerless) <= 0.15 * partnerless
    assert summary["estimate_is_lower_bound"] is False
    # one number cuts the table: the better half by the estimate is right more often than the whole
    order = np.argsort(-got["precision_estimate"].to_numpy(), kind="stable")
    assert right[order][: len(order) // 2].mean() > measured


def test_the_estimate_never_rises_as_the_score_falls(pair) -> None:
    x, y = centred_table(pair.left), centred_table(pair.right)
    pos_l = {k: i for i, k in enumerate(pair.left_ids.tolist())}
    pos_r = {k: i for i, k in enumerate(pair.right_ids.tolist())}
    tl = np.array([pos_l[k] for k in pair.truth_left.tolist()])
    tr = np.array([pos_r[k] for k in pair.truth_right.tolist()])
    seed = np.zeros(len(tl), bool)
    seed[:15] = True
    est = estimate_precision(x, y, tl, tr, seed)
    assert np.isnan(est.precision[seed]).all() and np.isfinite(est.precision[~seed]).all()
    order = np.argsort(-est.score[~seed], kind="stable")
    assert (np.diff(est.precision[~seed][order]) <= 1e-12).all()


def test_a_chance_matching_is_estimated_near_zero() -> None:
    rng = np.random.default_rng(5)
    x = centred_table(rng.normal(size=(600, 64)))
    y = centred_table(rng.normal(size=(600, 48)))
    ll, lr = rng.permutation(600)[:150], rng.permutation(600)[:150]
    seed = np.zeros(150, bool)
    seed[:15] = True
    est = estimate_precision(x, y, ll, lr, seed)
    assert est.estimated_precision is not None and est.estimated_precision <= 0.2
    # no row finds its partner: every row is counted without one, and the estimate says it is a floor
    assert est.lower_bound and est.summary()["estimate_is_lower_bound"]


def test_min_precision_keeps_the_links_it_promises(pair, run) -> None:
    links, summary = run
    cut, cut_summary = link_pair(pair, {**FAST, "links": {"min_precision": 0.95}})
    got = links[~links["is_seed"]]
    assert got["precision_estimate"].between(0, 1).all()
    assert links.loc[links["is_seed"], "precision_estimate"].isna().all()
    kept = cut[~cut["is_seed"]]
    assert len(kept) > 0 and (kept["precision_estimate"] >= 0.95).all()
    assert cut["is_seed"].sum() == links["is_seed"].sum()
    # the same run, cut: exactly the links of the full run whose estimate reaches 0.95
    assert _pairs(kept) == _pairs(got[got["precision_estimate"] >= 0.95])
    assert cut_summary["min_precision"] == {
        "value": 0.95,
        "links_before": len(got),
        "links_dropped": len(got) - len(kept),
    }
    assert summary["estimated_true_links"] <= summary["n_links"]
    assert summary["trusted_links"] == int((got["precision_estimate"] >= 0.9).sum())
    assert summary["precision_basis"]["rows"] == "whole tables"  # no regions: the tables fit


def test_a_run_larger_than_its_fit_sample_is_estimated_in_regions(pair) -> None:
    links, summary = link_pair(pair, {**FAST, "scale": {"fit_rows": 500}})
    got = links[~links["is_seed"]]
    basis = summary["precision_basis"]
    assert basis["rows"] == "regions" and 0 < basis["links_estimated_in_regions"] < len(got)
    assert max(basis["left_rows"], basis["right_rows"]) <= 600  # the regions: about fit_rows a side
    truth = set(zip(pair.truth_left.tolist(), pair.truth_right.tolist(), strict=True))
    measured = np.mean([p in truth for p in zip(got["left_id"], got["right_id"], strict=True)])
    # measured 0.682 against 0.639 (scored against the fit sample instead, the links outside it: 0.731)
    assert abs(summary["estimated_precision"] - measured) <= 0.07
    assert got["precision_estimate"].notna().all() and got["precision_estimate"].between(0, 1).all()
    # one number cuts the table: the estimate never rises as the links' similarity falls
    ranked = got.sort_values("similarity", ascending=False, na_position="last", kind="stable")
    assert (np.diff(ranked["precision_estimate"].to_numpy()) <= 1e-12).all()
    assert summary["final_matching"] is None  # the final matching needs the whole tables


def _weak_matching(seed: int) -> tuple[float, float]:
    """A small pair (650 rows a side, 300 shared) matched by a weak map: every CSLS mutual nearest pair
    under a map fitted on the true pairs of a noisy second encoder, about one in eight of them right.
    Returns (estimated, measured) precision of those links (15 true pairs as seeds)."""
    pair = make_pair(n_objects=1000, alpha=0.3, n_seeds=15, noise=0.8, seed=seed)
    x, y = centred_table(pair.left), centred_table(pair.right)
    pos_l = {k: i for i, k in enumerate(pair.left_ids.tolist())}
    pos_r = {k: i for i, k in enumerate(pair.right_ids.tolist())}
    tl = np.array([pos_l[k] for k in pair.truth_left.tolist()])
    tr = np.array([pos_r[k] for k in pair.truth_right.tolist()])
    rows, cols, _ = csls_mutual(((x @ procrustes_map(x[tl].T @ y[tr])) @ y.T).astype(np.float32))
    free = ~np.isin(rows, tl[:15]) & ~np.isin(cols, tr[:15])
    rows, cols = rows[free], cols[free]
    partner = dict(zip(tl.tolist(), tr.tolist(), strict=True))
    measured = float(
        np.mean([partner.get(r) == c for r, c in zip(rows.tolist(), cols.tolist(), strict=True)])
    )
    seed = np.concatenate([np.ones(15, bool), np.zeros(len(rows), bool)])
    est = estimate_precision(x, y, np.concatenate([tl[:15], rows]), np.concatenate([tr[:15], cols]), seed)
    assert est.estimated_precision is not None
    return est.estimated_precision, measured


def test_a_weak_matching_of_small_tables_is_not_overestimated() -> None:
    """Most links wrong (precision 0.12-0.15), a few hundred rows a side: a wrong link's knock-out leaves
    its row's second choice, and a null made of them all is too light at high scores. Counting each
    knock-out by the chance its link is right, the estimate is off by -0.05 to +0.10 over four pairs
    (mean +0.03); with every knock-out alike it was +0.05 to +0.17 (mean +0.12)."""
    errors = [est - measured for est, measured in map(_weak_matching, range(1, 5))]
    assert np.mean(errors) <= 0.06, errors
    assert max(abs(e) for e in errors) <= 0.12, errors


def test_a_large_run_is_cut_where_its_estimated_f1_peaks() -> None:
    # Four scored links, best first by score: chances right 0.9, 0.8, 0.1, 0.05; 3 true pairs beyond the
    # one seed (tables of 4 rows a side, none partnerless). Expected F1 of the first k links:
    # 2 * (0.9, 1.7, 1.8, 1.85) / (k + 3) = 0.45, 0.68, 0.6, 0.53: the first two are kept, with the seed
    # and the link no round scored (kept, as the fitted links are).
    from veclink_spark.precision import PrecisionEstimate
    from veclink_spark.trust import f1_cut

    anchors = {
        "left_id": np.array([1, 2, 3, 4, 5, 6]),
        "right_id": np.array([11, 12, 13, 14, 15, 16]),
        "is_seed": np.array([True, False, False, False, False, False]),
    }
    score = np.array([np.nan, 0.2, 0.9, 0.05, 0.5, np.nan])
    lfdr = np.array([np.nan, 0.9, 0.1, 0.95, 0.2, 0.5])
    est = PrecisionEstimate(
        lfdr=lfdr,
        precision=np.zeros(6),
        score=score,
        estimated_precision=None,
        estimated_true_links=0.0,
        partnerless_left=0.0,
        partnerless_right=0.0,
        null_match_rate=(0.0, 0.0),
        first_lfdr=lfdr,
    )
    kept, cut, pos, facts = f1_cut(anchors, est, np.arange(6), 4, 4)
    assert kept["left_id"].tolist() == [1, 3, 5, 6]
    assert pos.tolist() == [0, 2, 4, 5]
    assert facts == {"links_before": 5, "kept": 3, "estimated_f1": 0.68}
    assert cut.estimated_precision == pytest.approx(1 - (0.1 + 0.2 + 0.5) / 3)


def test_column_top_mean_is_the_strided_partition_bit_for_bit() -> None:
    # The estimate partitions the columns of its similarity matrices from a tiled transposed copy; the
    # numbers must be those of the partition of the strided view (ties included: values on a grid).
    rng = np.random.default_rng(3)
    g = (np.round(rng.normal(size=(301, 517)), 2)).astype(np.float32)
    gt = _transposed(g, tile=64)
    assert gt.flags["C_CONTIGUOUS"] and np.array_equal(gt, g.T)
    assert np.array_equal(_column_top_mean(gt, 10), _top_mean(g.T, 10))


def test_the_final_matching_refits_its_map_on_the_links_it_kept(monkeypatch) -> None:
    """A map fitted on 12 right links and 40 wrong ones finds few pairs; refitted on what it kept, it
    finds most of the overlap (the refits of precision.final_matching)."""
    from veclink_spark import precision
    from veclink_spark.kernels.centre import normalise_rows

    rng = np.random.default_rng(0)
    n, d, shared = 600, 24, 300
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    objects = normalise_rows(rng.normal(size=(2 * n - shared, d)))
    left, theirs = objects[:n], np.concatenate([objects[:shared], objects[n:]])
    order = rng.permutation(len(theirs))  # the right table in its own order
    right = normalise_rows(theirs[order] @ q + 0.1 * rng.normal(size=theirs.shape))
    partner = np.argsort(order)[:shared]  # left row i < shared is right row partner[i]
    wrong_left, wrong_right = np.arange(300, 340), rng.choice(len(right), 40, replace=False)
    link_left = np.concatenate([np.arange(22), wrong_left])  # 10 seeds, 12 right links, 40 wrong
    link_right = np.concatenate([partner[:22], wrong_right])
    is_seed = np.arange(len(link_left)) < 10

    def right_links(fits: int) -> tuple[int, int]:
        monkeypatch.setattr(precision, "FINAL_MATCH_FITS", fits)
        fm = precision.final_matching(left, right, link_left, link_right, is_seed)
        found = [(a, b) for a, b, s in zip(fm.left, fm.right, fm.is_seed, strict=True) if not s]
        return sum(a < shared and partner[a] == b for a, b in found), fm.fits

    once, one_fit = right_links(1)
    refitted, fits = right_links(4)
    assert one_fit == 1 and 1 < fits <= 4
    assert refitted >= 2 * once and refitted >= 100, (once, refitted)


def test_the_vote_null_counts_a_knockout_as_the_maps_vote_on_it() -> None:
    # Each knocked-out row's new match, checked against CSLS mutual nearest neighbours computed whole
    # for every map on the tables without the row's partner (csls_mutual): the same votes.
    from veclink_spark.precision import _vote_keeps

    rng = np.random.default_rng(5)
    n, d = 60, 8
    own = rng.normal(size=(n, d))
    other = own @ np.linalg.qr(rng.normal(size=(d, d)))[0] + 0.6 * rng.normal(size=(n, d))
    own /= np.linalg.norm(own, axis=1, keepdims=True)
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    maps = np.stack([procrustes_map(own[b::2].T @ other[b::2]) for b in (0, 1)] + [np.eye(d)])
    rows = np.arange(0, n, 3)  # row i's partner is row i of the other table
    got_to, want = [], []
    for r in rows:
        keep = np.arange(n) != r
        # the row's match under the first map with its partner gone: the candidate each map votes on
        lrows, rcols, _ = csls_mutual((own @ maps[0]) @ other[keep].T)
        to = np.nonzero(keep)[0][rcols[lrows == r]] if (lrows == r).any() else None
        if to is None:
            continue
        votes = 0
        for w in maps:
            lr, rc, _ = csls_mutual((own @ w) @ other[keep].T)
            votes += int(((lr == r) & (np.nonzero(keep)[0][rc] == to[0])).any())
        got_to.append((r, to[0]))
        want.append(votes)
    assert len(want) >= 5 and len(set(want)) > 1
    r_, t_ = (np.array(v) for v in zip(*got_to, strict=True))
    assert _vote_keeps(own, other, maps, r_, r_, t_).tolist() == want  # each row's partner: itself
