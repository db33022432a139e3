"""The Spark job end to end on a local session: same links as the in-process reference, Delta round
tables, resume after a failure, idempotent re-runs, the job's command line and its errors."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from veclink_spark import LinkConfig, Linker, link_arrays
from veclink_spark.backends.spark import SparkBackend
from veclink_spark.errors import InputError
from veclink_spark.store import RunStore
from veclink_spark.synthetic import make_pair

ROOT = Path(__file__).resolve().parents[1]
FAST = {
    # fit_rows 150 < 280 rows a side: the fit runs in process on the rows nearest the seeds, then the
    # extension's refinement rounds run on Spark (the path both engines must agree on); block_rows 60:
    # five cells, each row searched in its three nearest (scale.probes), keeping its best match.
    "scale": {"fit_rows": 150, "block_rows": 60},
    "advanced": {
        "views": {"base_views": 16},
        "bootstrap": {"max_rounds": 2},
        # mixture_separation 0: the take-off's mixture cut always applies, so both engines must cut
        # alike. The adaptive kept-share schedule, shortened (a share lasts one or two rounds).
        "refine": {
            "max_rounds": 5,
            "takeoff_keep": 0.25,
            "keep_patience": 1,
            "keep_max_level_rounds": 2,
            "mixture_separation": 0.0,
        },
    },
}


def _vectors(x: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1).astype(np.float32)), x.shape[1]).cast(
        pa.list_(pa.float32())
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    pair = make_pair(n_objects=400, alpha=0.3, n_seeds=15, seed=1)  # enough links for the mixture cut
    d = tmp_path_factory.mktemp("linkdata")
    pq.write_table(pa.table({"id": pair.left_ids, "vector": _vectors(pair.left)}), d / "left.parquet")
    pq.write_table(pa.table({"id": pair.right_ids, "vector": _vectors(pair.right)}), d / "right.parquet")
    pq.write_table(pa.table({"left_id": pair.seed_left, "right_id": pair.seed_right}), d / "seeds.parquet")
    return pair, d


@pytest.fixture(scope="module")
def first_run(spark, data, tmp_path_factory):
    _, d = data
    out = tmp_path_factory.mktemp("out")
    result = Linker(LinkConfig.from_dict(FAST), spark).link(
        str(d / "left.parquet"), str(d / "right.parquet"), str(d / "seeds.parquet"), str(out), run_id="full"
    )
    return result, out


def _reference(d, seed_left: np.ndarray, seed_right: np.ndarray, cfg: LinkConfig | None = None):
    """The in-process engine on the test tables: (links, summary); FAST unless ``cfg``."""
    left = pq.read_table(d / "left.parquet").to_pandas()
    right = pq.read_table(d / "right.parquet").to_pandas()
    return link_arrays(
        left["id"].to_numpy(),
        np.stack(left["vector"]),
        right["id"].to_numpy(),
        np.stack(right["vector"]),
        seed_left,
        seed_right,
        cfg or LinkConfig.from_dict(FAST),
    )


def _pairs(df) -> set:
    return set(zip(df["left_id"].tolist(), df["right_id"].tolist(), strict=False))


def test_spark_links_equal_the_reference(spark, data, first_run) -> None:
    pair, d = data
    result, _ = first_run
    ref, ref_summary = _reference(d, pair.seed_left, pair.seed_right)
    got = result.links.toPandas()
    assert len(got) > 15
    assert _pairs(got) == _pairs(ref)
    merged = got.merge(ref, on=["left_id", "right_id"], suffixes=("", "_ref"))
    assert (merged["votes"] == merged["votes_ref"]).all()
    assert (merged["round"] == merged["round_ref"]).all()
    assert np.allclose(merged["probability"], merged["probability_ref"])
    assert [h["promoted"] for h in result.summary["history"]] == [
        h["promoted"] for h in ref_summary["history"]
    ]
    # The extension ran on Spark, and the round-by-round record is the same in both engines.
    assert any(h["phase"] == "extend" for h in result.summary["history"])
    objectives = [h.get("objective") for h in result.summary["history"]]
    assert objectives == [h.get("objective") for h in ref_summary["history"]]
    assert [h["keep"] for h in result.summary["history"]] == [h["keep"] for h in ref_summary["history"]]
    # The mixture cut ran, and on the same scores in both engines.
    cuts = [h["mixture"] for h in result.summary["history"] if h.get("mixture")]
    assert cuts and cuts == [h["mixture"] for h in ref_summary["history"] if h.get("mixture")]
    # The last round's search recall: the same sample, the same exact nearest rows, the same probes
    # chosen in both engines.
    recall = result.summary["search_recall"]
    assert recall["mutual_pairs"] > 0 and recall["probes"] == result.summary["history"][-1]["probes"]
    assert recall == ref_summary["search_recall"]


def test_wrong_seeds_are_dropped_alike_in_both_engines(spark, data, tmp_path) -> None:
    pair, d = data
    partners = set(pair.truth_right.tolist())
    others = sorted(set(pair.right_ids.tolist()) - set(pair.seed_right.tolist()) - partners)
    seed_right = pair.seed_right.copy()
    seed_right[[0, 5, 10]] = others[:3]  # right rows with no partner at all: certainly wrong pairs
    pq.write_table(pa.table({"left_id": pair.seed_left, "right_id": seed_right}), tmp_path / "seeds.parquet")
    # A 250-row fit (still under the tables' 280 rows: the extension runs on Spark) finds enough links
    # for the check; FAST's 150 rows find 16 with three wrong seeds, and the check then waits for the
    # final links (which name the same three, kept).
    conf = LinkConfig.from_dict({**FAST, "scale": {**FAST["scale"], "fit_rows": 250}})
    result = Linker(conf, spark).link(
        str(d / "left.parquet"),
        str(d / "right.parquet"),
        str(tmp_path / "seeds.parquet"),
        str(tmp_path / "out"),
    )
    ref, ref_summary = _reference(d, pair.seed_left, seed_right, conf)
    wrong = set(zip(pair.seed_left[[0, 5, 10]].tolist(), seed_right[[0, 5, 10]].tolist(), strict=True))
    named = {(s["left_id"], s["right_id"]) for s in result.summary["suspect_seeds"] if s["dropped"]}
    assert named == wrong
    assert result.summary["suspect_seeds"] == ref_summary["suspect_seeds"]
    got = result.links.toPandas()
    assert _pairs(got) == _pairs(ref)
    assert not (_pairs(got) & wrong)  # the dropped seeds are not in the links
    assert int(got["is_seed"].sum()) == 12


def test_fit_on_executors_gives_the_links_of_the_driver(spark, data, first_run, tmp_path) -> None:
    """``scale.fit_on: executors`` runs the fit's rounds as Spark stages (the published loop's hash join
    and the refinement's blocked search, one Delta commit per round) and links exactly as the fit in the
    driver's process (``first_run``: auto, 150 rows a side, in process)."""
    _, d = data
    driver, _ = first_run
    cfg = LinkConfig.from_dict({**FAST, "scale": {**FAST["scale"], "fit_on": "executors"}})
    out = tmp_path / "out"
    result = Linker(cfg, spark).link(
        str(d / "left.parquet"), str(d / "right.parquet"), str(d / "seeds.parquet"), str(out), run_id="ex"
    )
    key = ["left_id", "right_id"]
    want = driver.links.toPandas().sort_values(key, ignore_index=True)
    got = result.links.toPandas().sort_values(key, ignore_index=True)
    assert len(got) > 15 and len(got) == len(want)
    same = ["left_id", "right_id", "is_seed", "round", "votes", "views"]
    assert got[same].equals(want[same])
    assert np.abs(got["probability"] - want["probability"]).max() <= 1e-9
    fit_history = [h for h in driver.summary["history"] if h["phase"] != "extend"]
    assert [h["phase"] for h in fit_history][0] == "geh"
    # Round for round the same record (what a round decided; not its seconds or engine statistics).
    decided = ["round", "phase", "views_branch", "views", "keep", "candidates", "threshold", "mixture"]
    decided += ["promoted", "added", "removed", "links", "objective"]
    assert [{k: h.get(k) for k in decided} for h in result.summary["history"]] == [
        {k: h.get(k) for k in decided} for h in driver.summary["history"]
    ]
    # The fit's rounds were committed on executors, one commit each, under the run id "ex-fit".
    store = RunStore(spark, str(out))
    assert store.last_committed_round("ex-fit") == len(fit_history)
    assert len(store.committed_rounds("ex-fit")) == len(fit_history)
    assert store.read_round("votes", "ex-fit", 1).count() > 0


def test_output_tables_and_summary(spark, first_run) -> None:
    result, out = first_run
    links = result.links
    assert {"left_id", "right_id", "probability", "votes", "views", "round", "is_seed"} <= set(links.columns)
    pdf = links.toPandas()
    assert pdf["left_id"].is_unique and pdf["right_id"].is_unique
    assert int(pdf["is_seed"].sum()) == 15
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run_id"] == "full" and summary["rounds"] == len(summary["history"])
    store = RunStore(spark, str(out))
    rows = store.read_run("summary", "full").toPandas()
    assert len(rows) == summary["rounds"]
    assert {"anchors", "candidates", "threshold", "seconds"} <= set(rows.columns)
    # The fit (in process) is committed once, as its last round; then every extension round.
    fit_rounds = len([h for h in summary["history"] if h["phase"] != "extend"])
    assert 0 < fit_rounds < summary["rounds"]
    for r in range(fit_rounds, summary["rounds"] + 1):
        assert store.read_round("anchors", "full", r).count() >= 15
    assert len(store.committed_rounds("full")) == summary["rounds"] - fit_rounds + 1
    assert store.last_committed_round("full") == summary["rounds"]
    # Where the time went: every phase of a run that extends beyond its fit sample, in order.
    phases = [p["phase"] for p in summary["phases"]]
    assert phases == [
        "inputs", "centre", "sample", "fit", "seed_check", "full_table_rounds", "assess", "model", "write"
    ]  # fmt: skip
    # the last round chose its probes (scale.max_probes), measuring its search recall as it did: the
    # summary reads that measurement, no phase of its own
    assert "probes" in summary["history"][-1] and summary["search_recall"]["probes"] >= 3
    assert all(p["seconds"] >= 0 for p in summary["phases"])
    assert abs(sum(p["share"] for p in summary["phases"]) - 1.0) < 0.01
    assert sum(p["seconds"] for p in summary["phases"]) <= summary["seconds"]
    assert all(h["commit_seconds"] >= 0 for h in summary["history"][fit_rounds:])


def test_rerun_of_a_finished_run_changes_nothing(spark, data, first_run) -> None:
    _, d = data
    result, out = first_run
    before = result.links.toPandas()
    again = Linker(LinkConfig.from_dict(FAST), spark).link(
        str(d / "left.parquet"), str(d / "right.parquet"), str(d / "seeds.parquet"), str(out), run_id="full"
    )
    after = again.links.toPandas()
    assert len(after) == len(before) and _pairs(after) == _pairs(before)
    # Already finished: its stored summary comes back (same timing: nothing was recomputed).
    assert again.summary["seconds"] == result.summary["seconds"]
    assert json.loads((out / "summary" / "full.json").read_text())["run_id"] == "full"


def test_resume_with_other_seeds_is_refused(spark, data, first_run, tmp_path) -> None:
    _, d = data
    _, out = first_run
    seeds = pq.read_table(d / "seeds.parquet").to_pandas().head(10)
    seeds.to_parquet(tmp_path / "fewer.parquet")
    with pytest.raises(InputError, match="other inputs.*seeds: 15 -> 10"):
        linker = Linker(LinkConfig.from_dict(FAST), spark)
        linker.link(
            str(d / "left.parquet"),
            str(d / "right.parquet"),
            str(tmp_path / "fewer.parquet"),
            str(out),
            "full",
        )


def test_resume_after_a_failure_gives_the_same_links(spark, data, first_run, monkeypatch) -> None:
    _, d = data
    result, out = first_run
    original = SparkBackend.refine_votes
    calls: list[int] = []

    def failing(self, round_no, *args, **kwargs):
        calls.append(round_no)
        if len(calls) == 2:  # the extension's second round
            raise RuntimeError("simulated executor loss")
        return original(self, round_no, *args, **kwargs)

    linker = Linker(LinkConfig.from_dict(FAST), spark)
    args = (str(d / "left.parquet"), str(d / "right.parquet"), str(d / "seeds.parquet"), str(out))
    monkeypatch.setattr(SparkBackend, "refine_votes", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        linker.link(*args, run_id="crashy")
    store = RunStore(spark, str(out))
    # Committed: the fit (one round) and the extension's first round.
    assert store.last_committed_round("crashy") == calls[1] - 1
    monkeypatch.setattr(SparkBackend, "refine_votes", original)
    resumed = linker.link(*args, run_id="crashy")
    assert _pairs(resumed.links.toPandas()) == _pairs(result.links.toPandas())
    # Resuming with another configuration is refused.
    other = Linker(
        LinkConfig.from_dict({**FAST, "advanced": {**FAST["advanced"], "bootstrap": {"max_rounds": 3}}}),
        spark,
    )
    with pytest.raises(Exception, match="another configuration"):
        other.link(*args, run_id="crashy")


def _job():
    spec = importlib.util.spec_from_file_location("link_job", ROOT / "jobs" / "link.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_job_command_line_runs(spark, data, tmp_path, capsys) -> None:
    pair, d = data
    truth = tmp_path / "truth.parquet"
    pq.write_table(pa.table({"left_id": pair.truth_left, "right_id": pair.truth_right}), truth)
    cfg = tmp_path / "fast.yaml"
    cfg.write_text(
        "advanced:\n  views:\n    base_views: 16\n"
        "  bootstrap:\n    max_rounds: 1\n  refine:\n    max_rounds: 0\n"
    )
    code = _job().main(
        [
            "--left",
            str(d / "left.parquet"),
            "--right",
            str(d / "right.parquet"),
            "--seeds",
            str(d / "seeds.parquet"),
            "--output",
            str(tmp_path / "out"),
            "--config",
            str(cfg),
            "--run-id",
            "cli",
            "--report",
            "--truth",
            str(truth),
        ]
    )
    assert code == 0
    assert (tmp_path / "out" / "links" / "_delta_log").is_dir()
    assert (tmp_path / "out" / "summary.json").is_file()
    assert (tmp_path / "out" / "model" / "model.json").is_file()
    for png in ("scores.png", "rounds.png"):  # the figures, as PNG files of some size
        data_ = (tmp_path / "out" / "report" / png).read_bytes()
        assert data_[:8] == b"\x89PNG\r\n\x1a\n" and len(data_) > 10_000


@pytest.mark.parametrize(
    "problem",
    ["bad_config", "missing_seeds", "one_seed", "unknown_seed_id", "output_is_a_file", "not_a_table"],
)
def test_job_errors_are_one_line_and_write_nothing(
    spark, data, tmp_path, capsys, error_times, problem
) -> None:
    _, d = data
    seeds = d / "seeds.parquet"
    left = d / "left.parquet"
    out = tmp_path / "out"
    args = []
    if problem == "output_is_a_file":
        out = tmp_path / "file"
        out.write_text("not a folder")
    if problem == "not_a_table":
        left = tmp_path / "notes"
        left.mkdir()
        (left / "readme.txt").write_text("a folder of text, not a table")
    if problem == "bad_config":
        cfg = tmp_path / "bad.yaml"
        cfg.write_text("advanced:\n  bootstrap:\n    max_rounds: 0\n    bogus: 1\n")
        args = ["--config", str(cfg)]
    elif problem == "missing_seeds":
        seeds = tmp_path / "nope.parquet"
    elif problem in ("one_seed", "unknown_seed_id"):
        tab = pq.read_table(d / "seeds.parquet").to_pandas()
        if problem == "one_seed":
            tab = tab.head(1)
        else:
            tab.loc[0, "left_id"] = -42
        seeds = tmp_path / "seeds.parquet"
        tab.to_parquet(seeds)
    t0 = time.perf_counter()
    code = _job().main(
        [
            "--left",
            str(left),
            "--right",
            str(d / "right.parquet"),
            "--seeds",
            str(seeds),
            "--output",
            str(out),
            *args,
        ]
    )
    error_times.append((problem, time.perf_counter() - t0))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len([line for line in err if line.startswith("veclink-spark:")]) == 1
    if problem == "output_is_a_file":
        assert out.read_text() == "not a folder" and "is a file" in err[-1]
    else:
        assert not out.exists()
    if problem == "not_a_table":
        assert "readme.txt" in err[-1] and "not a Parquet file" in err[-1]
    if problem == "bad_config":
        assert "bootstrap.max_rounds must be >= 1" in err[-1] and "bogus" in err[-1]


def test_job_fail_on_stall_exits_3_after_writing_its_tables(spark, tmp_path, capsys) -> None:
    # Unrelated tables (random vectors of different dimensions): nothing to link, the run stalls.
    rng = np.random.default_rng(7)
    ids = np.arange(200)
    pq.write_table(
        pa.table({"id": ids, "vector": _vectors(rng.normal(size=(200, 24)))}), tmp_path / "l.parquet"
    )
    pq.write_table(
        pa.table({"id": ids + 1000, "vector": _vectors(rng.normal(size=(200, 16)))}), tmp_path / "r.parquet"
    )
    pq.write_table(pa.table({"left_id": ids[:15], "right_id": ids[:15] + 1000}), tmp_path / "s.parquet")
    cfg = tmp_path / "fast.yaml"
    cfg.write_text(
        "advanced:\n  views:\n    base_views: 16\n"
        "  bootstrap:\n    max_rounds: 1\n  refine:\n    max_rounds: 2\n"
    )
    out = tmp_path / "out"
    code = _job().main(
        [
            *("--left", str(tmp_path / "l.parquet"), "--right", str(tmp_path / "r.parquet")),
            *("--seeds", str(tmp_path / "s.parquet"), "--output", str(out)),
            *("--config", str(cfg), "--fail-on-stall"),
        ]
    )
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("veclink-spark:")]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "stalled"
    assert code == 3
    assert len(err) == 1 and "stalled (--fail-on-stall)" in err[0]
    assert (out / "links" / "_delta_log").is_dir()
