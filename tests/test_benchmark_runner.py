"""Tests of the benchmark runner (benchmarks/grid.py, benchmarks.harness.runner / report).

The default tests run on a tiny synthetic "data folder" laid out like ../shared/data (two corpora embedded
by two synthetic encoders with local isometry, veclink_spark.synthetic), with the smoke grid's fast
veclink config: no Spark, no real data. A slow test runs the smoke grid on the real data, and another
one the Spark engine.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from benchmarks.harness import runner
from benchmarks.harness.report import write_report
from benchmarks.harness.runner import (
    SEED_KINDS,
    grid_from_dict,
    load_grid,
    method_config,
    plan_runs,
    read_results,
    run_grid,
)
from benchmarks.harness.study import study_main
from veclink_spark.encoders import vectors_to_arrow
from veclink_spark.errors import ConfigError, InputError
from veclink_spark.synthetic import make_pair

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
N_PER_CORPUS = 400


def _load_job() -> Any:
    spec = importlib.util.spec_from_file_location("benchmark_job", ROOT / "benchmarks" / "grid.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Corpora 'alpha' and 'beta' (400 objects each) embedded by encoders 'encA' (48-d) and 'encB' (32-d)."""
    root = tmp_path_factory.mktemp("synthetic-data")
    pair = make_pair(
        n_objects=2 * N_PER_CORPUS, alpha=1.0, n_seeds=2, latent_dim=6, dim_left=48, dim_right=32, seed=3
    )
    lpos = {k: i for i, k in enumerate(pair.left_ids.tolist())}
    rpos = {k: i for i, k in enumerate(pair.right_ids.tolist())}
    x = pair.left[[lpos[k] for k in pair.truth_left.tolist()]]  # row i of x and y: the same object
    y = pair.right[[rpos[k] for k in pair.truth_right.tolist()]]
    for c, corpus in enumerate(("alpha", "beta")):
        rows = slice(c * N_PER_CORPUS, (c + 1) * N_PER_CORPUS)
        ids = np.arange(N_PER_CORPUS, dtype=np.int64) + 1000 * (c + 1)
        (root / corpus).mkdir()
        for name, vecs in (("encA", x[rows]), ("encB", y[rows])):
            perm = np.random.default_rng(c).permutation(N_PER_CORPUS)  # files need not share a row order
            table = pa.table({"id": pa.array(ids[perm]), "vector": vectors_to_arrow(vecs[perm])})
            pq.write_table(table, root / corpus / f"{name}.parquet")
    return root


def synthetic_grid(data_dir: Path, **changes: Any) -> dict[str, Any]:
    """A grid on the synthetic folder with the smoke grid's veclink config (two rounds per phase)."""
    smoke = yaml.safe_load((ROOT / "benchmarks" / "grids" / "smoke.yaml").read_text())
    grid = {
        "name": "synth",
        "data_dir": str(data_dir),
        "corpora": ["alpha"],
        "encoders": ["encA", "encB"],
        "pairs": "all",
        "alphas": [0.3],
        "n_seeds": [15],
        "seed_kinds": ["in_domain", "out_of_domain"],
        "split_seeds": [0],
        "methods": ["veclink", "procrustes", "self_learning"],
        "veclink_overrides": smoke["veclink_overrides"],
        "ood_source": {"alpha": "beta"},
    }
    grid.update(changes)
    return grid


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_grid_files_parse_with_the_protocol_shape() -> None:
    paper = load_grid(ROOT / "benchmarks" / "grids" / "paper.yaml")
    assert paper.alphas == (0.15, 0.2, 0.3) and paper.n_seeds == (15, 20, 30)
    assert len(paper.pairs) == 6 and paper.corpora == ("wordnet", "debian")
    assert paper.seed_kinds == ("in_domain", "out_of_domain") and paper.split_seeds == (0, 1, 2)
    assert paper.ood_source == {"wordnet": "debian", "debian": "wordnet"}
    assert len(plan_runs(paper)) == 2 * 6 * 2 * 3 * 3 * 3 * 7
    quick = load_grid(ROOT / "benchmarks" / "grids" / "quick.yaml")
    assert (quick.alphas, quick.n_seeds, quick.seed_kinds, quick.split_seeds) == (
        (0.3,),
        (15,),
        ("in_domain",),
        (0,),
    )
    assert len(quick.pairs) == 6 and len(quick.corpora) == 2
    smoke = load_grid(ROOT / "benchmarks" / "grids" / "smoke.yaml")
    assert len(smoke.corpora) == 1 and len(smoke.pairs) == 1 and len(plan_runs(smoke)) == len(smoke.methods)
    assert smoke.veclink_config.bootstrap.max_rounds == 2 and smoke.veclink_config.refine.max_rounds == 2
    targets = load_grid(ROOT / "benchmarks" / "grids" / "targets.yaml")
    runs = plan_runs(targets)
    digests = {m: {r.config_digest for r in runs if r.method == m} for m in ("veclink", "veclink_loop")}
    assert len(runs) == 48 * 8 and all(len(d) == 1 for d in digests.values())
    assert digests["veclink"] != digests["veclink_loop"]  # the loop alone: its own config and row
    assert method_config(targets.veclink_config, "veclink_loop").refine.mode == "none"
    assert method_config(targets.veclink_config, "veclink") == targets.veclink_config
    negative = load_grid(ROOT / "benchmarks" / "grids" / "negative-control.yaml")
    assert all(left == "glove-6b-50d-mean" for left, _ in negative.pairs) and len(plan_runs(negative)) == 28
    for name in ("seeds-debian", "overlap-debian"):  # slices of the paper grid: same run keys
        part = load_grid(ROOT / "benchmarks" / "grids" / f"{name}.yaml")
        assert len(plan_runs(part)) == 126 and {r.key for r in plan_runs(part)} <= {
            r.key for r in plan_runs(paper)
        }


def test_bad_grid_reports_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        grid_from_dict(
            {
                "corpora": ["a"],
                "encoders": ["e1", "e2"],
                "alphas": [0.3, 1.5],
                "n_seeds": [1],
                "methods": ["veclnk"],
                "seed_kind": ["in_domain"],
                "veclink_overrides": {"advanced": {"bootstrap": {"max_rounds": 0}}},
            },
            source="g.yaml",
        )
    text = " ".join(info.value.problems)
    assert "1.5 is not in (0, 1)" in text and "n_seeds': 1 is below 2" in text
    assert "did you mean 'veclink'" in text and "did you mean 'seed_kinds'" in text
    assert "bootstrap.max_rounds must be >= 1" in text
    with pytest.raises(ConfigError, match="need another corpus"):
        grid_from_dict(
            {
                "corpora": ["a"],
                "encoders": ["e1", "e2"],
                "alphas": [0.3],
                "n_seeds": [15],
                "seed_kinds": ["out_of_domain"],
            }
        )


def test_runner_writes_resumes_and_reports(data_dir: Path, tmp_path: Path) -> None:
    grid_path = tmp_path / "synth.yaml"
    grid_path.write_text(yaml.safe_dump(synthetic_grid(data_dir)))
    out, report = tmp_path / "out", tmp_path / "report" / "BENCH.md"
    job = _load_job()
    assert job.main(["--grid", str(grid_path), "--out-dir", str(out), "--report", str(report)]) == 0

    rows = lines(out / "results.jsonl")
    assert len(rows) == 2 * 3  # 2 seed kinds x 3 methods, one split each
    assert {(r["seed_kind"], r["method"]) for r in rows} == {
        (k, m) for k in ("in_domain", "out_of_domain") for m in ("veclink", "procrustes", "self_learning")
    }
    for r in rows:
        assert r["status"] == "ok" and r["corpus"] == "alpha" and r["pair"] == "encA/encB"
        assert 0.0 <= r["precision"] <= 1.0 and 0.0 <= r["recall"] <= 1.0 and r["wall_seconds"] > 0
        assert r["n_links"] >= r["n_correct"] >= 0 and r["host"]["cores"] >= 1
        assert "--grid" in r["command"]
        # recall denominator: |S| - n in-domain (S = 0.3 * 400 = 120), |S| out-of-domain
        assert r["n_true"] == (105 if r["seed_kind"] == "in_domain" else 120)
        assert r["n_left"] == r["n_right"] == 120 + 140 + (15 if r["seed_kind"] == "out_of_domain" else 0)
    veclink = [r for r in rows if r["method"] == "veclink"]
    for r in veclink:
        assert r["engine"] == "reference" and len(r["config_digest"]) == 12
        assert r["rounds"] == len(r["links_per_round"]) and r["verdict"] in ("took off", "stalled")
        last = r["by_round"][-1]  # the cumulative by-round scores end at the run's own totals
        assert last["n_links"] == r["n_links"] and last["n_correct"] == r["n_correct"]
    sl = next(r for r in rows if r["method"] == "self_learning" and r["seed_kind"] == "in_domain")
    # far above chance (~0.4 %): the truth is wired to the right rows (measured F1 about 0.7 on this split)
    assert sl["f1"] > 0.4, "self-learning Procrustes should link this locally isometric synthetic pair"
    assert (out / "configs" / f"{veclink[0]['config_digest']}.json").is_file()
    assert json.loads((out / "plans" / "synth.json").read_text())["keys"] == [r["key"] for r in rows]

    # resume: a second invocation runs nothing; a new method runs only that method
    before = (out / "results.jsonl").read_text()
    assert job.main(["--grid", str(grid_path), "--out-dir", str(out)]) == 0
    assert (out / "results.jsonl").read_text() == before
    grid = load_grid(grid_path).restrict(methods=["cca", "procrustes"])
    outcome = run_grid(grid, out)
    assert (outcome.planned, outcome.skipped, outcome.finished, outcome.failed) == (4, 2, 2, 0)
    assert [r["method"] for r in lines(out / "results.jsonl")[6:]] == ["cca", "cca"]

    # the report: provenance, target sections, one table per cell with exactly the methods run, plots
    write_report(out, report, command="pytest")
    text = report.read_text()
    assert "Generated" in text and "by `pytest`" in text and " cores, " in text
    assert "../out/results.jsonl" in text and "8 successful runs, 0 failed" in text
    assert "Grid `synth`" in text and "4 of 4 planned runs present" in text
    assert "advanced.bootstrap.max_rounds=2, advanced.refine.max_rounds=2" in text
    for kind in ("in-domain", "out-of-domain"):
        assert f"### alpha · encA/encB · {kind} seeds · α = 0.3 · n = 15" in text
    cells = text.split("## Per-cell results")[1]
    for method in ("veclink", "procrustes", "cca", "self_learning"):
        assert cells.count(f"| {method} | 1 |") == 2
    assert "least_squares" not in text and "| mlp |" not in text  # never run, never shown
    assert "mistral-embed vs text-embedding-3-small" in text and "88.3" in text  # paper reference
    assert "Not measured: no veclink run at α = 0.15, n = 15." in text
    ood = text.split("### Out-of-domain against in-domain seeds")[1].split("## Figures")[0]
    assert "| veclink | 1 |" in ood and "| self_learning | 1 |" in ood
    # the grid's veclink config is not today's default: no figure, and the report says why
    assert "*No figure: no veclink run of today's defaults (the results hold 2 of other" in text
    assert not list(report.parent.glob("*.png"))
    f1 = next(r["f1"] for r in rows if r["method"] == "self_learning" and r["seed_kind"] == "in_domain")
    assert (
        f"| self_learning | 1 | {100 * sl['precision']:.1f} | {100 * sl['recall']:.1f} | {100 * f1:.1f} |"
        in text
    )

    # Two veclink configs in one results file: each is its own method label; the targets show the one
    # the grid's plan names, the other is compared on the splits both ran; a missing config file says so.
    digest = veclink[0]["config_digest"]
    with (out / "results.jsonl").open("a") as fh:
        for r in veclink:
            fh.write(json.dumps(dict(r, config_digest="0123456789ab", key=r["key"] + "|other")) + "\n")
    write_report(out, report, command="pytest")
    text = report.read_text()
    assert "`0123456789ab` (../out/configs/0123456789ab.json): unknown (config file missing)" in text
    assert f"the targets show `{digest}`" in text
    targets, earlier = text.split("## Targets")[1].split("### Earlier veclink configurations")
    assert f"veclink@{digest[:6]}" in targets and "veclink@012345" not in targets
    row = f"| veclink@012345 | veclink@{digest[:6]} | unknown (config file missing) | 2 | 2 |"
    assert row in earlier.split("## Figures")[0]


def test_failed_runs_are_recorded_retried_and_reported(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grid = grid_from_dict(synthetic_grid(data_dir, seed_kinds=["in_domain"], methods=["procrustes", "cca"]))

    def broken(*args: Any) -> Any:
        raise InputError("synthetic failure")

    monkeypatch.setitem(runner.BASELINES, "cca", broken)
    with pytest.raises(InputError, match="synthetic failure"):
        run_grid(grid, tmp_path)  # stops at the first failure by default; the finished run is kept
    assert [r["method"] for r in lines(tmp_path / "results.jsonl")] == ["procrustes"]
    outcome = run_grid(grid, tmp_path, keep_going=True)
    assert (outcome.finished, outcome.failed, outcome.skipped) == (0, 1, 1)
    err = lines(tmp_path / "results.jsonl")[-1]
    assert err["status"] == "error" and "synthetic failure" in err["error"]
    write_report(tmp_path, tmp_path / "R.md")
    text = (tmp_path / "R.md").read_text()
    assert "## Failed runs" in text and "synthetic failure" in text and "| cca |" not in text
    assert "1 of 2 planned runs present; 1 not run" in text

    monkeypatch.undo()
    assert run_grid(grid, tmp_path).finished == 1  # the failed run is re-tried
    write_report(tmp_path, tmp_path / "R.md")
    assert "## Failed runs" not in (tmp_path / "R.md").read_text()


def test_truncated_last_line_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"key": "a", "status": "ok"}\n{"key": "b", "sta')
    assert [r["key"] for r in read_results(path, repair=True)] == ["a"]
    assert path.read_text() == '{"key": "a", "status": "ok"}\n'
    path.write_text('{"key": "a", "status": "ok"}')  # complete, but its newline is missing
    assert len(read_results(path, repair=True)) == 1 and path.read_text().endswith("}\n")
    path.write_text('{"key": "a"\n{"key": "b", "status": "ok"}\n')
    with pytest.raises(InputError, match="line 1"):
        read_results(path)


def test_missing_embedding_files_fail_before_running(tmp_path: Path) -> None:
    grid = grid_from_dict(synthetic_grid(tmp_path / "nowhere"))
    with pytest.raises(InputError, match="embedding file"):
        run_grid(grid, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_smoke_grid_on_real_data(tmp_path: Path) -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    smoke = ROOT / "benchmarks" / "grids" / "smoke.yaml"
    grid = load_grid(smoke).restrict(methods=["veclink", "self_learning"])
    from dataclasses import replace

    run_grid(replace(grid, data_dir=SHARED_DATA), tmp_path)
    rows = {r["method"]: r for r in lines(tmp_path / "results.jsonl")}
    assert rows["veclink"]["n_left"] == 3900 and rows["veclink"]["n_true"] == 1800 - 15
    assert rows["self_learning"]["f1"] > 0.6  # measured 81.6 % on this split


@pytest.mark.slow
def test_spark_engine_matches_reference(data_dir: Path, tmp_path: Path, spark: Any) -> None:
    grid = grid_from_dict(synthetic_grid(data_dir, seed_kinds=["in_domain"], methods=["veclink"]))
    run_grid(grid, tmp_path, engine="reference")
    run_grid(grid, tmp_path, engine="spark", spark=spark)
    ref, spk = lines(tmp_path / "results.jsonl")
    assert spk["engine"] == "spark" and (tmp_path / "splits").is_dir()
    for field in ("precision", "recall", "n_links", "n_correct", "rounds"):
        assert spk[field] == ref[field], field


def test_plot_means_average_the_same_pairs_for_every_method() -> None:
    import pandas as pd

    from benchmarks.harness.report import _mean_over_pairs

    def row(label: str, pair: str, alpha: float, f1: float) -> dict[str, Any]:
        return {
            "corpus": "c",
            "seed_kind": "in_domain",
            "n_seeds": 15,
            "label": label,
            "pair": pair,
            "alpha": alpha,
            "f1": f1,
        }

    ok = pd.DataFrame(
        [row("a", "p1", 0.3, 0.2), row("a", "p2", 0.3, 0.4), row("b", "p1", 0.3, 0.9)]  # b: one easy pair
        + [row("a", "p1", 0.15, 0.1), row("b", "p1", 0.15, 0.5)]  # at 0.15 both ran on p1 only
    )
    got = _mean_over_pairs(ok, "alpha", "n_seeds").set_index(["label", "alpha"])["mean"]
    assert got.to_dict() == pytest.approx({("a", 0.15): 0.1, ("a", 0.3): 0.3, ("b", 0.15): 0.5})


def test_report_headline_is_the_planned_config_and_earlier_ones_compare_on_shared_splits(
    tmp_path: Path,
) -> None:
    import pandas as pd

    from benchmarks.harness.report import _earlier_configs, split_headline

    def row(method: str, digest: str | None, split: int, f1: float, pair: str = "p1") -> dict[str, Any]:
        label = method if digest is None else f"{method}@{digest[:6]}"
        return {
            "corpus": "c",
            "pair": pair,
            "seed_kind": "in_domain",
            "alpha": 0.3,
            "n_seeds": 15,
            "split_seed": split,
            "method": method,
            "config_digest": digest,
            "label": label,
            "f1": f1,
        }

    ok = pd.DataFrame(
        [
            row("veclink", "new000000000", 0, 0.8),
            row("veclink", "old000000000", 0, 0.6),
            row("veclink", "old000000000", 1, 1.0),  # a split the headline lacks: not compared
            row("veclink", "old000000000", 0, 0.9, pair="p2"),  # a cell the headline lacks
            row("procrustes", None, 0, 0.1),
        ]
    )
    head, earlier = split_headline(ok, {"new000000000"})
    assert sorted(head["label"]) == ["procrustes", "veclink@new000"]
    assert len(earlier) == 3 and set(earlier["label"]) == {"veclink@old000"}
    # no plan names any of them, or only one config ran: everything is headline
    assert split_headline(ok, set())[1].empty
    assert split_headline(ok[ok["config_digest"] != "old000000000"], {"x"})[1].empty

    table = [ln for ln in _earlier_configs(head, earlier, tmp_path) if ln.startswith("| veclink@old000")]
    cells = [c.strip() for c in table[0].strip("|").split("|")]
    # one cell, one split both ran; old 60.0 < new 80.0; two runs only the old config has
    assert cells[3:] == ["1", "1", "60.0", "80.0", "0", "1", "2"]


def test_figures_draw_todays_defaults_only_and_say_why_a_figure_is_missing(tmp_path: Path) -> None:
    from benchmarks.harness.runner import config_digest
    from veclink_spark.config import LinkConfig

    # today's default, saved before links.ask existed (a field added since), and another config
    old_default = LinkConfig().to_dict()
    del old_default["links"]["ask"]
    other = LinkConfig.from_dict({"advanced": {"refine": {"max_rounds": 2}}})
    (tmp_path / "configs").mkdir()
    digests = {"default": "d" * 12, "other": config_digest(other)}
    (tmp_path / "configs" / f"{digests['default']}.json").write_text(json.dumps(old_default))
    (tmp_path / "configs" / f"{digests['other']}.json").write_text(json.dumps(other.to_dict()))
    by_round = [{"round": r, "n_links": 10 * r, "precision": 0.9, "recall": 0.1 * r} for r in (1, 2, 3)]

    def row(
        method: str, cfg: str | None, corpus: str, pair: str, kind: str, alpha: float, n: int, f1: float
    ) -> dict[str, Any]:
        key = f"{corpus}|{pair}|{kind}|{alpha}|{n}|{method}|{cfg}"
        return {
            "key": key, "status": "ok", "corpus": corpus, "pair": pair, "seed_kind": kind, "alpha": alpha,
            "n_seeds": n, "split_seed": 0, "method": method, "engine": "reference",
            "config_digest": None if cfg is None else digests[cfg], "precision": f1, "recall": f1, "f1": f1,
            "n_links": 10, "rounds": 3, "wall_seconds": 1.0, "by_round": by_round if cfg else None,
        }  # fmt: skip

    cells = [
        (c, p, k, a) for c in ("c1", "c2") for p in ("p1", "p2") for k in SEED_KINDS for a in (0.15, 0.3)
    ]
    rows = [row("veclink", "default", *cell, 15, 0.8) for cell in cells]
    rows += [row("procrustes", None, *cell, 15, 0.1) for cell in cells]
    rows += [row("veclink", "other", *cells[0], 15, 0.5)]  # left out of every figure
    for n in (20, 30):  # a seed sweep on one corpus: a line of three points in one panel
        for method, cfg in (("veclink", "default"), ("cca", None)):
            rows += [row(method, cfg, "c1", p, "in_domain", 0.3, n, 0.5) for p in ("p1", "p2")]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "R-f1-vs-overlap.png").write_bytes(b"stale")  # an earlier rendering's figure
    out = write_report(tmp_path, tmp_path / "R.md")
    text = (tmp_path / "R.md").read_text().split("## Figures")[1].split("## Per-cell results")[0]

    assert [p.name for p in out.plots] == [
        "R-veclink-vs-best.png",
        "R-f1-vs-seeds.png",
        "R-veclink-rounds.png",
    ]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(p.name for p in out.plots)
    assert (
        "Does veclink beat the best classical baseline? One point per cell" in text and "20 cells" in text
    )  # 16 + the sweep's 4
    assert (
        f"veclink runs of today's defaults only (config `{digests['default']}`; 1 run of another "
        "configuration left out)" in text
    )
    assert "their configs predate `links.ask`" in text
    assert (
        "*F1 against the shared fraction α: no figure; veclink with today's defaults ran at α = 0.15, 0.3"
        in text
    )
    assert text.count("![") == 3 and all(
        f"*{q}" in text for q in ("Does veclink", "How does F1", "How do veclink")
    )


def test_a_study_replaces_its_rows_unless_told_to_append(tmp_path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    reported: list[int] = []

    def run(*extra: str) -> int:
        return study_main(
            ["--data-dir", str(data), "--out", str(out), *extra],
            "a study",
            out,
            ["c:l:r"],
            lambda ap: None,
            lambda args: iter([{"cell": args.cells[0], "split": args.split_seed}]),
            lambda rows, path: reported.append(len(rows)),
            append=False,
        )

    assert run() == 0
    assert run("--split-seed", "2") == 0
    assert reported[-1] == 1  # the second run replaced the first one's row
    assert run("--append", "--split-seed", "3") == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["split"] for r in rows] == [2, 3] and reported[-1] == 2
