"""The last round's search recall (veclink_spark.search_recall): exact nearest rows in both engines,
the probes a pair needs, and the figures and advice of a run beyond its fit sample."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from veclink_spark import LinkConfig
from veclink_spark.backends.in_process import NumpyBackend
from veclink_spark.kernels.centre import normalise_rows
from veclink_spark.kernels.maps import procrustes_map
from veclink_spark.kernels.search import CHUNK_ROWS, best_rows, probes_needed
from veclink_spark.search_recall import RECALL_TARGET, advice, chosen_probes, search_recall
from veclink_spark.synthetic import make_pair

try:
    from synthetic_runs import FAST, link_pair
except ImportError:  # tests/ became a package
    from tests.synthetic_runs import FAST, link_pair


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return normalise_rows(rng.normal(size=(n, d)))


def test_best_rows_is_the_exact_nearest_row_with_ties_to_the_smaller_id() -> None:
    rng = np.random.default_rng(0)
    x = _unit(rng, CHUNK_ROWS + 500, 8)  # two chunks
    ids = rng.permutation(len(x)).astype(np.int64) * 7
    q = _unit(rng, 50, 8)
    at, sim = best_rows(ids, x, q)
    brute = q @ x.T
    np.testing.assert_array_equal(at, brute.argmax(axis=1))
    np.testing.assert_allclose(sim, brute.max(axis=1), atol=1e-8)
    # A row copied under a smaller id, in the other chunk: its copy wins, whichever chunk it is in.
    x2 = np.concatenate([x, x[at[:3]]])
    ids2 = np.concatenate([ids, -1 - np.arange(3)])
    at2, _ = best_rows(ids2, x2, q[:3])
    assert ids2[at2].tolist() == [-1, -2, -3]
    # ... and within one chunk
    small = np.concatenate([x[:100], x[:3]])
    small_ids = np.concatenate([ids[:100], ids[:3] - 1])
    at3, _ = best_rows(small_ids, small, small[:3])
    assert at3.tolist() == [100, 101, 102]
    # nothing to search: no row
    at4, sim4 = best_rows(ids[:0], x[:0], q[:2])
    assert at4.tolist() == [-1, -1] and np.isneginf(sim4).all()


def test_probes_needed_is_the_fewest_probes_at_which_two_rows_share_a_cell() -> None:
    left = np.array([[4, 1, 2], [4, 1, 2], [4, 1, 2], [4, 1, 2]])
    right = np.array([[4, 0, 3], [0, 1, 3], [0, 3, 2], [0, 3, 5]])
    assert probes_needed(left, right).tolist() == [1, 2, 3, 4]


def test_spark_nearest_rows_equal_the_in_process_backend(spark) -> None:
    from veclink_spark.stages.nearest import nearest_rows

    rng = np.random.default_rng(3)
    x = _unit(rng, 400, 6).astype(np.float32).astype(np.float64)
    ids = rng.choice(2**62, size=400, replace=False).astype(np.int64) - 2**61
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 6).cast(pa.list_(pa.float64()))
    df = spark.createDataFrame(pa.table({"id": ids, "vector": vectors}).to_pandas()).repartition(3)
    q = _unit(rng, 40, 6)
    got = nearest_rows(df, q).toPandas().sort_values("q")
    assert got["q"].tolist() == list(range(40))
    assert got["id"].tolist() == ids[best_rows(ids, normalise_rows(x), q)[0]].tolist()


def test_search_recall_falls_with_fewer_probes_and_advises_more() -> None:
    pair = make_pair(n_objects=1000, seed=5)
    cfg = LinkConfig.from_dict({**FAST, "scale": {"fit_rows": 300, "block_rows": 100, "max_rounds": 3}})
    backend = NumpyBackend(pair.left_ids, pair.left, pair.right_ids, pair.right, cfg)
    # the true map of the synthetic pair: the one fitted on its true pairs
    xl, xr = backend.anchor_vectors(pair.truth_left, pair.truth_right)
    w = procrustes_map(xl.T @ xr)
    cells = backend.right_sample(40)[:10]  # ten cells: a sixth of the rows each
    one, three = search_recall(backend, w, cells, 1), search_recall(backend, w, cells, 3)
    assert one["mutual_pairs"] == three["mutual_pairs"] > 100
    assert one["recall"] == three["recall"]
    r = [one["recall"][str(p)] for p in range(1, 9)]
    assert r == sorted(r) and r[0] < r[-1]  # more probes never find less
    assert one["recall_at_probes"] == r[0] and three["recall_at_probes"] == r[2]
    # one probe misses a share of the mutual pairs here (0.69 measured), three find them all
    assert r[0] < RECALL_TARGET <= r[2]
    assert one["probes_for_target"] == 1 + next(i for i, v in enumerate(r) if v >= RECALL_TARGET)
    text = advice(one)
    assert text is not None and f"{one['probes_for_target']} probes reach" in text
    assert advice(three) is None
    # measured up to one probe only, as a last round held to one would: the fewest that reach the
    # target are still named (the advice's figure), beyond the probes allowed
    capped = search_recall(backend, w, cells, 1, most=1)
    assert capped["probes_for_target"] == one["probes_for_target"] and capped["recall"] == one["recall"]


def test_a_run_beyond_its_fit_sample_reports_its_search_recall() -> None:
    pair = make_pair(n_objects=1000, seed=5)
    scale = {"fit_rows": 300, "block_rows": 100, "max_rounds": 3}
    summaries = {}
    for probes in (1, 3):  # max_probes 1: the last round searches scale.probes, unmeasured
        conf = {**FAST, "scale": {**scale, "probes": probes, "max_probes": 1}}
        _, summaries[probes] = link_pair(pair, conf)
    one, three = summaries[1]["search_recall"], summaries[3]["search_recall"]
    assert one["probes"] == 1 and three["probes"] == 3 and one["mutual_pairs"] > 100
    assert one["recall_at_probes"] < RECALL_TARGET <= three["recall_at_probes"]
    assert any("2 probes reach" in a for a in summaries[1]["advice"])
    assert not any("scale.probes" in a for a in summaries[3]["advice"])
    # a run within its fit sample has no full-table round to measure
    _, whole = link_pair(pair, FAST)
    assert whole["search_recall"] is None


def test_the_last_round_chooses_its_probes_up_to_max_probes() -> None:
    pair = make_pair(n_objects=1000, seed=5)
    scale = {"fit_rows": 300, "block_rows": 100, "max_rounds": 3}
    runs = {}
    fixed, chosen = {"probes": 2, "max_probes": 2}, {"probes": 1, "max_probes": 8}
    for name, extra in (("fixed 2", fixed), ("1 to 8", chosen)):
        runs[name] = link_pair(pair, {**FAST, "scale": {**scale, **extra}})
    links, summary = runs["1 to 8"]
    last = summary["history"][-1]
    # one probe reaches 0.77 of the sample's mutual pairs here, two 0.99: the round chose two ...
    assert last["probes"] == 2 and last["search_recall"]["recall_at_probes"] < RECALL_TARGET
    assert last["search_recall"]["recall"]["2"] >= RECALL_TARGET
    # ... and linked as a round told to search two does; the summary measures the two it searched
    fixed_links, fixed_summary = runs["fixed 2"]
    pairs = {(a, b) for a, b in zip(links["left_id"], links["right_id"], strict=True)}
    assert pairs == {(a, b) for a, b in zip(fixed_links["left_id"], fixed_links["right_id"], strict=True)}
    # the summary's figures are the round's own measurement, read at the two it chose
    measured = last["search_recall"]
    assert summary["search_recall"] == {**measured, "probes": 2, "recall_at_probes": measured["recall"]["2"]}
    assert fixed_summary["search_recall"]["probes"] == 2  # measured after the run, under the model's map
    assert not any("probes reach" in a for a in summary["advice"])


def test_chosen_probes_stay_between_scale_probes_and_max_probes() -> None:
    figures = {"recall_at_probes": 0.5, "probes_for_target": 6}
    assert chosen_probes(figures, 3, 8) == 6
    assert chosen_probes(figures, 3, 5) == 5  # the target is out of reach: the most allowed
    assert chosen_probes({"recall_at_probes": 0.5, "probes_for_target": None}, 3, 5) == 5
    assert chosen_probes({"recall_at_probes": 0.99, "probes_for_target": 1}, 3, 8) == 3
    assert chosen_probes({"recall_at_probes": None, "probes_for_target": None}, 3, 8) == 3  # nothing measured
