#!/usr/bin/env python
"""How far a run's precision estimate can be trusted, and how fast questions close the gap to the
ceiling (issue 28). Three steps; each writes under ``--out-dir`` (default benchmarks/trust):

    python benchmarks/trust.py run [--part I --parts N]   # link every cell, cache the runs (slow)
    python benchmarks/trust.py reassess [--cells C ...]   # assess the cached rounds' links again
    python benchmarks/trust.py report                     # score the cached runs: results + REPORT.md
    python benchmarks/trust.py render                     # REPORT.md and figures from the results only
    python benchmarks/trust.py questions --cells C ...    # a simulated user answers 1-4 x 15 questions
    python benchmarks/trust.py heldout [--cells C ...]    # other splits than the grid's (alpha 0.2, ...)

Cells: the targets grid (2 corpora x 6 encoder pairs x alpha 0.15 / 0.3 x in- / out-of-domain seeds,
15 seeds, split seed 0) and the negative control (GloVe mean against MiniLM-L6 and mpnet, alpha 0.3;
``python benchmarks/negative_control_data.py`` builds its data). A cached run (a pickle under
``--cache``, outside the repository) holds the rounds' links, the final links and the summary figures
of :func:`veclink_spark.trust.assess_links`, exactly as ``link_arrays`` makes them. ``reassess`` runs
that last step again with the current code on each cached run's rounds' links (10-200 s a cell, where
the rounds take 3-25 min) and writes the runs so assessed under ``--into`` (default: the cache's folder
with ``-reassessed`` appended); ``report --cache`` that folder scores them. It says, per cell, whether
the links and the estimate changed.

The report gives, per cell: measured P / R / F1 of the final links, the estimated precision, the links
kept at ``--min-precision`` 0.9 and 0.95 (their measured precision beside the estimate), the rounds'
links before the final matching, and the ceiling (:mod:`benchmarks.harness.ceiling`). Needs
``../shared/data``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pickle
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.grid import code_version  # noqa: E402
from benchmarks.harness.ceiling import ceiling  # noqa: E402
from benchmarks.harness.runner import read_results  # noqa: E402
from veclink_spark.arrays import link_arrays  # noqa: E402
from veclink_spark.backends.in_process import NumpyBackend  # noqa: E402
from veclink_spark.config import LinkConfig  # noqa: E402
from veclink_spark.pipeline import fit_and_extend  # noqa: E402
from veclink_spark.splits import Split, load_corpus, make_split  # noqa: E402
from veclink_spark.trust import assess_links  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
NEGATIVE = ROOT / "benchmarks" / "negative" / "data"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "veclink-spark" / "trust" / "v2"
ENCODERS = ["all-mpnet-base-v2", "all-MiniLM-L6-v2", "multilingual-e5-small", "all-MiniLM-L3-v2-paraphrase"]
OTHER = {"wordnet": "debian", "debian": "wordnet"}
SHORT = {
    "all-mpnet-base-v2": "mpnet",
    "all-MiniLM-L6-v2": "L6",
    "multilingual-e5-small": "e5",
    "all-MiniLM-L3-v2-paraphrase": "L3",
    "glove-6b-50d-mean": "glove",
}
SAME_FAMILY = {frozenset({"mpnet", "L6"}), frozenset({"L6", "L3"}), frozenset({"mpnet", "L3"})}

Cell = tuple[str, str, str, float, str]


def cells() -> list[Cell]:
    """Every cell: the negative control first, then the targets grid."""
    out: list[Cell] = []
    for corpus in ("debian", "wordnet"):
        for r in ("all-MiniLM-L6-v2", "all-mpnet-base-v2"):
            out.append((f"neg-{corpus}", "glove-6b-50d-mean", r, 0.3, "in_domain"))
    for kind, alpha, corpus in itertools.product(
        ("in_domain", "out_of_domain"), (0.3, 0.15), ("debian", "wordnet")
    ):
        for left, right in itertools.combinations(ENCODERS, 2):
            out.append((corpus, left, right, alpha, kind))
    return out


def key(cell: Cell) -> str:
    return "__".join(map(str, cell))


def split_of(cell: Cell, data: Path, n_seeds: int = 15, seed: int = 0) -> Split:
    corpus, left, right, alpha, kind = cell
    if corpus.startswith("neg-"):
        c = corpus[4:]
        pair = load_corpus(NEGATIVE, c, left), load_corpus(NEGATIVE, c, right)
        return make_split(*pair, alpha, n_seeds, seed)
    ood = None
    if kind == "out_of_domain":
        o = OTHER[corpus]
        ood = (load_corpus(data, o, left), load_corpus(data, o, right))
    return make_split(
        load_corpus(data, corpus, left),
        load_corpus(data, corpus, right),
        alpha,
        n_seeds,
        seed,
        ood_seed_vectors=ood,
    )


def run(args: argparse.Namespace) -> int:
    args.cache.mkdir(parents=True, exist_ok=True)
    # the commit whose library this process imported: read once, at the start (a run of many cells
    # outlives commits made meanwhile; reading it per cell named those)
    code = code_version()
    for cell in cells()[args.part :: args.parts]:
        if args.cells and key(cell) not in args.cells:
            continue
        path = args.cache / f"{key(cell)}.pkl"
        if path.exists():
            continue
        out = _link_cell(split_of(cell, args.data_dir), code)
        with open(path, "wb") as f:
            pickle.dump(out, f)
        est = out["facts"]["estimated_precision"]
        print(key(cell), round(out["t_rounds"]), round(out["t_assess"]), est, flush=True)
    return 0


def _link_cell(sp: Split, code: str | None) -> dict[str, Any]:
    """One cell linked as ``link_arrays`` links it (defaults, in process): what a cached run holds."""
    cfg = LinkConfig()
    t0 = time.time()
    backend = NumpyBackend(sp.left.ids, sp.left.vectors, sp.right.ids, sp.right.vectors, cfg)
    result = fit_and_extend(backend, sp.seeds[:, 0], sp.seeds[:, 1], cfg)
    t1 = time.time()
    links, facts, _, questions = assess_links(backend, result.anchors, cfg)
    return {
        "rounds_anchors": result.anchors,
        "state": result.state.to_dict(),
        "links": links,
        "facts": facts,
        "questions": questions,
        "t_rounds": t1 - t0,
        "t_assess": time.time() - t1,
        "code": code,
    }


#: Cells beside the targets grid, drawn as a check on other splits draws them (issue 28 is checked on
#: held-out cases that are not in the repository): the protocol's other alpha and seed counts, on other
#: split seeds. Each is (alpha, seeds, number of seeds, split seed), over both corpora and every pair.
HELDOUT = ((0.2, "in_domain", 20, 1), (0.3, "out_of_domain", 30, 2))


def heldout_cells() -> list[tuple[Cell, int, int]]:
    """The cells of :data:`HELDOUT`: (cell, number of seeds, split seed)."""
    out = []
    for alpha, kind, n, seed in HELDOUT:
        for corpus in ("debian", "wordnet"):
            for left, right in itertools.combinations(ENCODERS, 2):
                out.append(((corpus, left, right, alpha, kind), n, seed))
    return out


def heldout(args: argparse.Namespace) -> int:
    """Link (cached under ``--cache``/heldout), score and report the cells of :data:`HELDOUT` (``--cells``:
    their keys, ``CELL__nN__sS``); a cell not run keeps its earlier row of heldout.jsonl. REPORT.md is
    written again with them (its section "Beside the grid")."""
    cache = args.cache / "heldout"
    cache.mkdir(parents=True, exist_ok=True)
    code = code_version()
    path = args.out_dir / "heldout.jsonl"
    before = {r["cell"]: r for r in read_results(path)} if path.exists() else {}
    rows = []
    for cell, n, seed in heldout_cells():
        name = f"{key(cell)}__n{n}__s{seed}"
        pkl = cache / f"{name}.pkl"
        if args.cells and name not in args.cells:
            if name in before:
                rows.append(before[name])
            continue
        if not pkl.exists():
            out = _link_cell(split_of(cell, args.data_dir, n, seed), code)
            with open(pkl, "wb") as f:
                pickle.dump(out, f)
        with open(pkl, "rb") as f:
            row = score_cell(cell, pickle.load(f), args.data_dir, n, seed)
        row.update(cell=name, n_seeds=n, split_seed=seed)
        rows.append(row)
        print(json.dumps(row), flush=True)
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return render(args)


def heldout_section(out: Path) -> list[str]:
    """The cells of :data:`HELDOUT` scored so far (heldout.jsonl of ``heldout``), as the grid's table."""
    path = out / "heldout.jsonl"
    if not path.exists():
        return []
    rows = read_results(path)
    by = Counter(r.get("assessed") or r.get("code") or "unrecorded" for r in rows)
    return [
        "",
        "## Beside the grid: other splits",
        "",
        "`python benchmarks/trust.py heldout [--cells CELL__nN__sS ...]`: the grid's estimate and cuts on",
        "splits it does not hold, as a check on held-out cases would draw them: "
        + " and ".join(
            f"alpha {alpha} with {n} {kind.replace('_', '-')} seeds (split seed {seed})"
            for alpha, kind, n, seed in HELDOUT
        )
        + "; `n` the seeds, `s` the split seed. Defaults, in process.",
        "",
        *_estimate_table(rows),
        "Run at: " + ", ".join(f"{n} cells at {c}" for c, n in by.items()) + ".",
    ]


def reassessed_dir(args: argparse.Namespace) -> Path:
    return args.into or args.cache.with_name(args.cache.name + "-reassessed")


def reassess(args: argparse.Namespace) -> int:
    """Each cached run's rounds' links assessed again with the current code (the rounds are not run):
    the estimator can be changed and measured on every cell in minutes."""
    into = reassessed_dir(args)
    into.mkdir(parents=True, exist_ok=True)
    code = code_version()  # read once, as in run
    for cell in cells():
        path = args.cache / f"{key(cell)}.pkl"
        if (args.cells and key(cell) not in args.cells) or not path.exists():
            continue
        with open(path, "rb") as f:
            cached = pickle.load(f)
        sp = split_of(cell, args.data_dir)
        cfg = LinkConfig()
        backend = NumpyBackend(sp.left.ids, sp.left.vectors, sp.right.ids, sp.right.vectors, cfg)
        t0 = time.time()
        links, facts, _, questions = assess_links(backend, cached["rounds_anchors"], cfg)
        out = {**cached, "links": links, "facts": facts, "questions": questions, "t_assess": time.time() - t0}
        out["assessed_code"] = code  # the commit whose final matching and estimate these links are
        with open(into / path.name, "wb") as f:
            pickle.dump(out, f)
        old = cached["links"]
        same = len(old["left_id"]) == len(links["left_id"]) and all(
            np.array_equal(np.asarray(old[c]), np.asarray(links[c]))
            for c in ("left_id", "right_id", "is_seed")
        )
        # the largest change of a link's precision_estimate (float round-off: about 1e-16)
        moved = (
            float(
                np.nanmax(
                    np.abs(np.asarray(old["precision_estimate"]) - links["precision_estimate"]), initial=0.0
                )
            )
            if same
            else None
        )
        print(
            json.dumps(
                {
                    "cell": key(cell),
                    "seconds": round(out["t_assess"], 1),
                    "same_links": bool(same),
                    "precision_estimate_moved": moved,
                    "estimated_precision": [
                        cached["facts"]["estimated_precision"],
                        facts["estimated_precision"],
                    ],
                }
            ),
            flush=True,
        )
    return 0


def _truth_set(sp: Split) -> tuple[set[tuple[int, int]], int]:
    truth = {(int(a), int(b)) for (a, b), s in zip(sp.truth.tolist(), sp.truth_is_seed, strict=True) if not s}
    return truth, len(truth)


def _prf(left: np.ndarray, right: np.ndarray, truth: set[tuple[int, int]], n_true: int) -> dict[str, float]:
    ok = np.array([(int(a), int(b)) in truth for a, b in zip(left, right, strict=True)], dtype=bool)
    p = float(ok.mean()) if len(ok) else 0.0
    r = float(ok.sum() / max(n_true, 1))
    return {"links": int(len(ok)), "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def score_cell(
    cell: Cell, cached: dict[str, Any], data: Path, n_seeds: int = 15, split_seed: int = 0
) -> dict[str, Any]:
    sp = split_of(cell, data, n_seeds, split_seed)
    truth, n_true = _truth_set(sp)
    links = cached["links"]
    found = ~np.asarray(links["is_seed"], bool)
    ll, lr = np.asarray(links["left_id"])[found], np.asarray(links["right_id"])[found]
    prec = np.asarray(links["precision_estimate"])[found]
    row: dict[str, Any] = {"cell": key(cell), "corpus": cell[0], "pair": f"{SHORT[cell[1]]}/{SHORT[cell[2]]}"}
    row.update(alpha=cell[3], seeds=cell[4], verdict=cached["state"].get("stop_reason"))
    row["final"] = _prf(ll, lr, truth, n_true)
    row["estimated_precision"] = cached["facts"]["estimated_precision"]
    for floor in (0.9, 0.95):
        keep = np.nan_to_num(prec, nan=-1.0) >= floor
        got = _prf(ll[keep], lr[keep], truth, n_true)
        est = float(np.min(prec[keep])) if keep.any() else None
        # the estimate of the kept set: the precision_estimate of its last (least confident) link
        row[f"at_{floor}"] = {**got, "estimated": est}
    ra = cached["rounds_anchors"]
    rf = ~np.asarray(ra["is_seed"], bool)
    row["rounds"] = _prf(np.asarray(ra["left_id"])[rf], np.asarray(ra["right_id"])[rf], truth, n_true)
    lpos = {k: i for i, k in enumerate(sp.left.ids.tolist())}
    rpos = {k: i for i, k in enumerate(sp.right.ids.tolist())}
    tl = np.array([lpos[a] for a, _ in sp.truth.tolist()])
    tr = np.array([rpos[b] for _, b in sp.truth.tolist()])
    row["ceiling"] = ceiling(sp.left.vectors, sp.right.vectors, tl, tr)
    facts = cached["facts"]
    row["final_matching"] = facts.get("final_matching")
    if "estimate_is_lower_bound" in facts:
        row["estimate_is_lower_bound"] = bool(facts["estimate_is_lower_bound"])
    else:  # a run cached before the summary had the field: every row of a side counted partnerless
        basis, none = facts["precision_basis"], facts["estimated_partnerless_rows"]
        row["estimate_is_lower_bound"] = (
            none["left"] >= basis["left_rows"] or none["right"] >= basis["right_rows"]
        )
    # the seed check's false alarms: every seed of the grid is a true pair
    dropped = [(int(d["left_id"]), int(d["right_id"])) for d in cached["state"].get("dropped_seeds") or []]
    all_true = {(int(a), int(b)) for a, b in sp.truth.tolist()}
    row["seed_check"] = {
        "seeds": len(sp.seeds),
        "dropped": len(dropped),
        "dropped_right": sum(p in all_true for p in dropped),
    }
    row["seconds"] = round(cached["t_rounds"] + cached["t_assess"], 1)
    row["code"] = cached.get("code")  # the commit whose rounds these are (None: before it was recorded)
    row["assessed"] = cached.get("assessed_code", cached.get("code"))  # reassessed: a later commit
    return row


def report(args: argparse.Namespace) -> int:
    """Score the cached runs. A cell without a cached run keeps its row of ``results.jsonl`` (the cache
    lives outside the repository and may be gone; each row says which commit ran it)."""
    before = {r["cell"]: r for r in read_results(args.out_dir / "results.jsonl")}
    rows = []
    for cell in cells():
        cached = args.cache / f"{key(cell)}.pkl"
        if not cached.exists():
            if key(cell) in before:
                rows.append(before[key(cell)])
                print(f"{key(cell)}: no cached run, its earlier row kept", flush=True)
            continue
        with open(cached, "rb") as f:
            rows.append(score_cell(cell, pickle.load(f), args.data_dir))
        print(json.dumps(rows[-1]), flush=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with open(args.out_dir / "results.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    write_report(rows, args.out_dir)
    return 0


def render(args: argparse.Namespace) -> int:
    """REPORT.md and its figures again from ``results.jsonl`` and ``questions.jsonl``, running nothing."""
    path = args.out_dir / "results.jsonl"
    write_report([json.loads(line) for line in path.read_text().splitlines() if line.strip()], args.out_dir)
    return 0


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def write_report(rows: list[dict[str, Any]], out: Path) -> None:
    """REPORT.md and REPORT-estimate.png from the scored cells."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 5), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for name, pick, marker in (
        ("all final links", lambda r: (r["estimated_precision"], r["final"]["precision"]), "o"),
        (
            "links kept at --min-precision 0.9",
            lambda r: (r["at_0.9"]["estimated"], r["at_0.9"]["precision"]),
            "^",
        ),
    ):
        pts = [pick(r) for r in rows if pick(r)[0] is not None and r["final"]["links"]]
        if pts:
            ax.scatter(*zip(*pts, strict=True), marker=marker, label=name, alpha=0.7)
    ax.plot([0, 1], [0, 1], "k-", lw=0.8)
    ax.fill_between([0, 1], [-0.05, 0.95], [0.05, 1.05], color="grey", alpha=0.15, label="within 0.05")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="estimated precision", ylabel="measured precision")
    ax.set_aspect("equal")
    ax.legend(loc="upper left", fontsize=8)
    fig.savefig(out / "REPORT-estimate.png", dpi=110)
    lines = [
        "# Estimated precision, final matching and the ceiling",
        "",
        "Made by `python benchmarks/trust.py run`, `python benchmarks/trust.py reassess` (the cached",
        "rounds' links assessed with the current code) and `python benchmarks/trust.py report --cache",
        "CACHE` (defaults, in process, 15 seeds, split seed 0; a cell with no run in CACHE keeps its row).",
        "P / R / F1 of the final links, seeds excluded; `est` the",
        "run's `estimated_precision`; `0.9` / `0.95`: the links kept at `--min-precision` 0.9 / 0.95",
        "(their count, measured precision, and the estimate of the kept set); `rounds` the F1 of the",
        "rounds' links before the final matching; `ceiling` the F1 of an orthogonal map fitted on half",
        "of the true pairs with the best cut (benchmarks/harness/ceiling.py), and its largest recall at",
        "precision 0.95. Each row of `results.jsonl` names the commit whose rounds it scores (`code`)",
        "and the commit whose final matching and estimate it scores (`assessed`: later than `code` when",
        "the cached rounds were assessed again by `reassess`).",
        "",
        "![Is a run's estimated precision its measured precision?](REPORT-estimate.png)",
        "",
        f"*Is a run's estimated precision its measured precision? One point per cell ({len(rows)} cells): "
        "all final links (circles) and the links kept at `--min-precision` 0.9 (triangles), on the "
        "diagonal when the estimate is exact; every run with the default configuration (`LinkConfig()`), "
        "nothing filtered.*",
        "",
    ]
    lines += _estimate_table(rows)
    floors = [r for r in rows if "estimate_is_lower_bound" in r]
    low = [r for r in floors if r["estimate_is_lower_bound"]]
    if low:
        est = [r["estimated_precision"] for r in low]
        got = [r["final"]["precision"] for r in low]
        lines.append(
            f"Estimates that say they are a floor (`estimate_is_lower_bound`): {len(low)} of the "
            f"{len(floors)} cells that record it ({sum(r['corpus'].startswith('neg-') for r in low)} of "
            f"them the negative control's), estimated {min(est):.3f}-{max(est):.3f}, measured "
            f"{min(got):.3f}-{max(got):.3f}."
        )
    by = Counter(r.get("assessed") or r.get("code") or "unrecorded" for r in rows)
    lines.append("Assessed at: " + ", ".join(f"{n} cells at {c}" for c, n in by.items()) + ".")
    checked = [r["seed_check"] for r in rows if "seed_check" in r]
    if checked:
        lines.append(
            f"Seed check (every seed here is a true pair): {sum(c['dropped_right'] for c in checked)} of "
            f"{sum(c['seeds'] for c in checked)} seeds named probably wrong, over the {len(checked)} cells "
            "that record it."
        )
    lines += heldout_section(out)
    lines += questions_section(out)
    (out / "REPORT.md").write_text("\n".join(lines) + "\n")


def _estimate_counts(rows: list[dict[str, Any]]) -> str:
    """The targets of issue 28's first item over ``rows``, in words."""
    scored = [r for r in rows if r["estimated_precision"] is not None and r["final"]["links"]]
    errs = [abs(r["estimated_precision"] - r["final"]["precision"]) for r in scored]
    e9 = [
        abs(r["at_0.9"]["estimated"] - r["at_0.9"]["precision"])
        for r in scored
        if r["at_0.9"]["estimated"] is not None
    ]
    need = [r for r in rows if r["ceiling"]["recall_at_p95"] >= 0.2 and r["at_0.95"]["links"]]
    return (
        f"|estimated - measured| over all links: within 0.05 on "
        f"{sum(e <= 0.05 for e in errs)} of {len(errs)} (largest {max(errs, default=0):.3f}); over the "
        f"links kept at 0.9: {sum(e <= 0.05 for e in e9)} of {len(e9)} (largest {max(e9, default=0):.3f}).\n"
        f"Kept at 0.95 where the ceiling reaches P 0.95 at recall >= 0.2: measured P >= 0.92 on "
        f"{sum(r['at_0.95']['precision'] >= 0.92 for r in need)} of {len(need)}."
    )


def _estimate_table(rows: list[dict[str, Any]]) -> list[str]:
    """One line per scored cell: P / R / F1, the estimate and its error, the links kept at 0.9 and 0.95,
    the rounds' F1 and the ceiling; then :func:`_estimate_counts`."""
    lines = [
        "| cell | P | R | F1 | est | abs err | 0.9: n / P / est | 0.95: n / P | rounds F1 "
        "| ceiling F1 / R@P.95 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fin, a9, a95, c = r["final"], r["at_0.9"], r["at_0.95"], r["ceiling"]
        err = None if r["estimated_precision"] is None else abs(r["estimated_precision"] - fin["precision"])
        name = f"{r['corpus']} {r['pair']} a{r['alpha']} {'ood' if r['seeds'] == 'out_of_domain' else 'in'}"
        if "split_seed" in r:
            name += f" n{r['n_seeds']} s{r['split_seed']}"
        lines.append(
            f"| {name} | {_f(fin['precision'])} | {_f(fin['recall'])} | {_f(fin['f1'])} | "
            f"{_f(r['estimated_precision'])} | {_f(err)} | {a9['links']} / {_f(a9['precision'])} / "
            f"{_f(a9['estimated'])} | {a95['links']} / {_f(a95['precision'])} | {_f(r['rounds']['f1'])} | "
            f"{_f(c['f1'])} / {_f(c['recall_at_p95'])} |"
        )
    return lines + ["", f"Cells: {len(rows)}. " + _estimate_counts(rows)]


def questions_section(out: Path) -> list[str]:
    """The simulated user's runs (questions.jsonl of ``questions``): a table, and F1 against the number
    of answers (REPORT-questions.png), questions beside random true pairs, with the ceiling."""
    path = out / "questions.jsonl"
    if not path.exists():
        return []
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = read_results(path)
    names = {panel(r): cell_name(r["cell"], r.get("split_seed", 0)) for r in rows}
    lines = [
        "",
        "## Questions: a simulated user",
        "",
        "`python benchmarks/trust.py questions --cells CELL --rounds 3 [--user names-partners]`: the",
        "run's 15 questions answered from the truth, the answers given to the next run (`--answers`),",
        "three times; beside it, the same number of random true pairs added as seeds (both scored without",
        "the pairs they were given). The simulated user answers yes / no (`yes-no`), or also names the",
        "left row's partner beside a no when it has one (`names-partners`, as `n=ID` in",
        "`notebooks/answer_questions.py`); answers count the questions answered.",
        "",
        "![Do answered questions help as much as random true pairs?](REPORT-questions.png)",
        "",
        "*Do answered questions help as much as the same number of random true pairs given as seeds? F1 "
        f"against the questions answered, {' and '.join(names.values())}; the questions runs with "
        "`links.ask: always` (so that every run asks), the random-seed runs with the default "
        "configuration.*",
        "",
        "| cell | user | answers (yes, partners named) | questions: links / P / R / F1 "
        "| random true seeds: links / P / R / F1 | ceiling F1 | commit |",
        "|---|---|---|---|---|---|---|",
    ]
    # one panel per cell: a shared legend would hide the curves
    cols = min(2, len(names))
    grid_rows = (len(names) + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 3.3 * grid_rows), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(grid_rows, cols, squeeze=False).ravel()
    label = {"yes-no": "answered yes / no", "names-partners": "yes / no, partners named"}
    style = {"yes-no": ("-o", "C0"), "names-partners": ("-^", "C2")}  # the same in every panel
    for ax, (cell, name) in zip(axes, names.items(), strict=False):
        mine = [r for r in rows if panel(r) == cell]
        for r in mine:
            q, rnd = r["questions"], r["random_seeds"]
            yes = f" ({r['yes']}, {r.get('named', 0)})" if "yes" in r else ""  # older rows did not count
            baseline = "-"
            if rnd:
                baseline = f"{rnd['links']} / {_f(rnd['precision'])} / {_f(rnd['recall'])} / {_f(rnd['f1'])}"
            lines.append(
                f"| {cell} | {user_name(user_of(r))} | {r['answers']}{yes} | {q['links']} / "
                f"{_f(q['precision'])} / {_f(q['recall'])} / {_f(q['f1'])} | {baseline} | "
                f"{_f(r['ceiling'])} | {r.get('code') or '-'} |"
            )
        for user in dict.fromkeys(map(user_of, mine)):
            run = [r for r in mine if user_of(r) == user]
            kind, rate = user
            marker, color = style[kind] if rate == 1 else ("-v", "C4")
            text = label[kind] if rate == 1 else f"yes / no, {round(100 * rate)} % of partners named"
            ax.plot(
                [r["answers"] for r in run], [r["questions"]["f1"] for r in run], marker, color=color,
                label=text,
            )  # fmt: skip
        base = [r for r in mine if r["random_seeds"]]
        base = [r for r in base if user_of(r) == user_of(base[0])] if base else []
        ax.plot(
            [r["answers"] for r in base], [r["random_seeds"]["f1"] for r in base], "--s", color="C1",
            label="random true pairs",
        )  # fmt: skip
        ceil = mine[0]["ceiling"]
        ax.axhline(ceil, color="0.4", lw=0.8, ls=":", label="ceiling (orthogonal map)")
        ax.axhspan(ceil - 0.05, ceil, color="0.5", alpha=0.12, label="within 0.05")
        ax.set(xlabel="questions answered (or random true pairs)", ylabel="F1", ylim=(0, 0.9))
        ax.set_xticks(sorted({r["answers"] for r in rows}))
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.savefig(out / "REPORT-questions.png", dpi=110)
    return lines


def user_of(row: dict[str, Any]) -> tuple[str, float]:
    """A questions row's simulated user and the share of partners it finds (rows of older runs: yes-no)."""
    return row.get("user", "yes-no"), row.get("find_rate", 1.0)


def user_name(user: tuple[str, float]) -> str:
    """The user as the report's table names it: ``names-partners (50%)`` when it finds some partners."""
    kind, rate = user
    return kind + (f" ({round(100 * rate)}%)" if rate < 1 else "")


def panel(row: dict[str, Any]) -> str:
    """A questions row's cell, with its split seed when it is not 0 (one panel of the figure each)."""
    seed = row.get("split_seed", 0)
    return row["cell"] + (f" (split seed {seed})" if seed else "")


def cell_name(cell_key: str, split_seed: int = 0) -> str:
    """A cell's key (``debian__all-mpnet-base-v2__...__0.15__in_domain``) as a reader names it:
    ``debian mpnet/L3, α 0.15, in-domain seeds``."""
    corpus, left, right, alpha, kind = cell_key.split("__")
    seeds = "in-domain" if kind == "in_domain" else "out-of-domain"
    split = f", split seed {split_seed}" if split_seed else ""
    return f"{corpus} {SHORT.get(left, left)}/{SHORT.get(right, right)}, α {alpha}, {seeds} seeds{split}"


def questions(args: argparse.Namespace) -> int:
    """A simulated user: the run's questions answered from the truth, 1 to ``--rounds`` times, against
    the same number of random true pairs added as seeds. ``--user names-partners`` also names, beside
    each no, the left row's true partner when it has one (``n=ID`` in the notebook)."""
    out = args.out_dir / "questions.jsonl"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    code = code_version()  # the commit whose library this process imported (see run)
    for name in args.cells:
        cell = next(c for c in cells() if key(c) == name)
        sp = split_of(cell, args.data_dir, seed=args.split_seed)
        truth, n_true = _truth_set(sp)
        partner = dict(sp.truth.tolist())
        lpos = {k: i for i, k in enumerate(sp.left.ids.tolist())}
        rpos = {k: i for i, k in enumerate(sp.right.ids.tolist())}
        tl = np.array([lpos[a] for a, _ in sp.truth.tolist()])
        tr = np.array([rpos[b] for _, b in sp.truth.tolist()])
        ceil = ceiling(sp.left.vectors, sp.right.vectors, tl, tr)["f1"]
        cfg = LinkConfig.from_dict({"links": {"ask": "always"}})
        answers = pd.DataFrame(columns=["left_id", "right_id", "match"])
        rng = np.random.default_rng(0)
        pool = [p for p in truth if p not in set(map(tuple, sp.seeds.tolist()))]
        order = rng.permutation(len(pool))
        asked_so_far = named = 0  # questions answered; partners the user named beside a no
        finds = np.random.default_rng(1)  # whether the user finds a partner that exists (--find-rate)
        for step in range(args.rounds + 1):
            links, summary = link_arrays(
                sp.left.ids, sp.left.vectors, sp.right.ids, sp.right.vectors,
                sp.seeds[:, 0], sp.seeds[:, 1], cfg, answers=answers if len(answers) else None,
            )  # fmt: skip
            f = ~links["is_seed"].to_numpy()
            got = _prf(links["left_id"].to_numpy()[f], links["right_id"].to_numpy()[f], truth, n_true)
            rand = None
            if args.baseline:
                extra = [pool[i] for i in order[:asked_so_far]]
                seeds = np.vstack([sp.seeds, np.array(extra, dtype=np.int64).reshape(-1, 2)])
                rl, rs = link_arrays(
                    sp.left.ids, sp.left.vectors, sp.right.ids, sp.right.vectors, seeds[:, 0], seeds[:, 1]
                )
                rf = ~rl["is_seed"].to_numpy()
                # random true pairs added as seeds are excluded from the score like the answered ones
                rand = _prf(
                    rl["left_id"].to_numpy()[rf], rl["right_id"].to_numpy()[rf], truth - set(extra), n_true
                )
            row = {
                "cell": name,
                "split_seed": args.split_seed,
                "user": args.user,
                "find_rate": args.find_rate,
                "answers": asked_so_far,
                "yes": int(answers["match"].astype(bool).sum()) - named if len(answers) else 0,
                "named": named,
                "questions": got,
                "random_seeds": rand,
                "ceiling": ceil,
                "code": code,
            }
            print(json.dumps(row), flush=True)
            with open(out, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            asked = pd.DataFrame(summary.get("questions") or [])
            if step == args.rounds or not len(asked):
                break
            asked["match"] = [
                partner.get(a) == b for a, b in zip(asked["left_id"], asked["right_id"], strict=True)
            ]
            asked_so_far += len(asked)
            given = [asked[["left_id", "right_id", "match"]]]
            if args.user == "names-partners":
                # a no, and the user finds the left row's object among the right rows (by its text)
                found = [
                    (a, partner[a], True)
                    for a, m in zip(asked["left_id"], asked["match"], strict=True)
                    if not m and a in partner and finds.random() < args.find_rate
                ]
                named += len(found)
                given.append(pd.DataFrame(found, columns=["left_id", "right_id", "match"]))
            answers = pd.concat([answers, *given], ignore_index=True).drop_duplicates()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=["run", "reassess", "report", "questions", "render", "heldout"])
    ap.add_argument("--data-dir", type=Path, default=DATA)
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--into", type=Path, default=None, help="reassess: where (default: CACHE-reassessed)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "trust")
    ap.add_argument("--part", type=int, default=0)
    ap.add_argument("--parts", type=int, default=1)
    ap.add_argument("--cells", nargs="*", default=[])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--user",
        choices=["yes-no", "names-partners"],
        default="yes-no",
        help="questions: the simulated user answers yes / no, or also names the left row's partner "
        "beside a no when it has one",
    )
    ap.add_argument("--split-seed", type=int, default=0, help="questions: the split's random seed")
    ap.add_argument(
        "--find-rate",
        type=float,
        default=1.0,
        help="questions, names-partners: the chance that the user finds a partner that exists",
    )
    ap.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="questions: skip the random-true-pairs runs",
    )
    args = ap.parse_args(argv)
    if args.step != "render" and not args.data_dir.is_dir():
        ap.error(f"no data folder {args.data_dir}: this benchmark needs ../shared/data")
    steps = {
        "run": run,
        "reassess": reassess,
        "report": report,
        "questions": questions,
        "render": render,
        "heldout": heldout,
    }
    return steps[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
