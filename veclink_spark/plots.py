"""Figures of a run, the ones a person looks at: link scores with the cut, links per round, and precision
and recall per round when a truth table is given.

Used by the notebooks (shown inline) and by ``jobs/link.py --report`` (written as PNG files next to the
run's tables). matplotlib with the non-interactive Agg backend; nothing here touches Spark.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .evaluate import score_links


def _pyplot() -> Any:
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def score_figure(links: pd.DataFrame, summary: dict[str, Any]) -> Any:
    """Histogram of the links' probabilities (seeds left out) and, when the run cut its take-off links
    at a mixture threshold, a second panel with that threshold on the scores' scale."""
    plt = _pyplot()
    cuts = [h["mixture"] for h in summary.get("history", []) if h.get("mixture")]
    fig, axes = plt.subplots(1, 2 if cuts else 1, figsize=(10 if cuts else 5.5, 3.6), squeeze=False)
    ax = axes[0][0]
    p = links.loc[~links["is_seed"].astype(bool), "probability"].to_numpy(np.float64)
    ax.hist(p, bins=np.linspace(0, 1, 41), color="#4477aa")
    ax.set_xlabel("link probability (posterior mean of the votes)")
    ax.set_ylabel("links")
    ax.set_title(f"{len(p)} links beyond {int(links['is_seed'].sum())} seeds: {summary.get('verdict')}")
    if cuts:
        last = cuts[-1]
        ax2 = axes[0][1]
        rounds = [h["round"] for h in summary["history"] if h.get("mixture")]
        ax2.plot(rounds, [c["threshold"] for c in cuts], marker="o", color="#aa3377")
        ax2.set_xlabel("round")
        ax2.set_ylabel("mixture cut (CSLS score)")
        ax2.set_title(
            f"last cut {last['threshold']:.3f}, separation {last['separation']}, "
            f"{'applied' if last.get('applies') else 'not applied'}"
        )
    fig.tight_layout()
    return fig


def probability_figure(probability: np.ndarray, title: str) -> Any:
    """Histogram of link probabilities (a merged index's links, new rows' links) on [0, 1]."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.hist(np.asarray(probability, np.float64), bins=np.linspace(0, 1, 41), color="#4477aa")
    ax.set_xlabel("link probability")
    ax.set_ylabel("links")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def rounds_figure(summary: dict[str, Any], truth_by_round: pd.DataFrame | None = None) -> Any:
    """Links after each round (and promoted per round); with ``truth_by_round`` (columns round,
    precision, recall) a second panel with precision and recall per round."""
    plt = _pyplot()
    hist = pd.DataFrame(summary.get("history", []))
    panels = 2 if truth_by_round is not None and len(truth_by_round) else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.6), squeeze=False)
    ax = axes[0][0]
    if len(hist):
        ax.plot(hist["round"], hist["links"], label="links after the round", color="#4477aa")
        ax.bar(hist["round"], hist["promoted"], label="promoted in the round", color="#bbbbbb")
        ax.set_xlabel("round")
        ax.set_ylabel("links")
        ax.legend(loc="upper left", fontsize=8)
    ax.set_title("links per round")
    if panels == 2:
        assert truth_by_round is not None
        ax2 = axes[0][1]
        ax2.plot(truth_by_round["round"], truth_by_round["precision"], marker=".", label="precision")
        ax2.plot(truth_by_round["round"], truth_by_round["recall"], marker=".", label="recall")
        ax2.set_ylim(0, 1.02)
        ax2.set_xlabel("round (committed rounds)")
        ax2.legend(loc="lower right", fontsize=8)
        ax2.set_title("against the truth table")
    fig.tight_layout()
    return fig


def precision_recall_by_round(anchors: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Precision and recall of the links (seeds left out) after each round, from a run's ``anchors``
    rows (round, left_id, right_id, is_seed: the link set after each round) and a truth table
    (left_id, right_id[, is_seed]), each round scored by ``evaluate.score_links``."""
    rows = []
    for rnd, part in anchors.groupby("round", sort=True):
        s = score_links(part[~part["is_seed"].astype(bool)], truth)
        rows.append({"round": int(rnd), "precision": s["precision"], "recall": s["recall"]})
    return pd.DataFrame(rows, columns=["round", "precision", "recall"])


def write_report(
    folder: str | Path,
    links: pd.DataFrame,
    summary: dict[str, Any],
    truth_by_round: pd.DataFrame | None = None,
) -> list[Path]:
    """Write ``scores.png`` and ``rounds.png`` into ``folder`` (a local path); returns the files."""
    plt = _pyplot()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, fig in (
        ("scores.png", score_figure(links, summary)),
        ("rounds.png", rounds_figure(summary, truth_by_round)),
    ):
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        files.append(out / name)
    return files
