"""What questions can do after a stall, measured on a cell cached by ``python benchmarks/trust.py run``.

1. How many of the run's links are right, and how many right ones each ordering of them (votes, views,
   probability, precision estimate) puts in its first 15 / 30 / 45: a question is one of those links,
   so this bounds the yeses a round of questions can get.
2. VecMap-style self-learning from the 15 seeds plus 45 random true pairs (orthogonal map on the
   dictionary, CSLS mutual nearest neighbours, the best cut chosen with the truth, the kept pairs as
   the next dictionary), eight iterations: what a classical method makes of the 60 pairs a user would
   have after 45 answers that were all yes.

    python benchmarks/question_limits.py [CELL]   # default: the stalled Debian mpnet / L3 alpha 0.15 cell
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.trust import CACHE, DATA, cells, key, split_of  # noqa: E402
from veclink_spark.kernels.centre import centred_table, normalise_rows  # noqa: E402
from veclink_spark.kernels.maps import procrustes_map  # noqa: E402
from veclink_spark.precision import csls_mutual  # noqa: E402

STALLED = "debian__all-mpnet-base-v2__all-MiniLM-L3-v2-paraphrase__0.15__in_domain"


def main(name: str = STALLED) -> int:
    with open(CACHE / f"{name}.pkl", "rb") as fh:
        cached = pickle.load(fh)
    sp = split_of(next(c for c in cells() if key(c) == name), DATA)
    partner = dict(sp.truth.tolist())
    links = cached["links"]
    found = ~np.asarray(links["is_seed"], bool)
    right = np.array([partner.get(a) == b for a, b in zip(links["left_id"], links["right_id"], strict=True)])[
        found
    ]
    print(f"{name}: {int(found.sum())} links beyond the seeds, {int(right.sum())} right")
    for col in ("votes", "views", "probability", "precision_estimate"):
        order = np.argsort(-np.nan_to_num(np.asarray(links[col], float)[found], nan=-9.0), kind="stable")
        top = [int(right[order[:k]].sum()) for k in (15, 30, 45)]
        print(f"  by {col}: right among the first 15 / 30 / 45: {top}")
    x = normalise_rows(centred_table(sp.left.vectors.astype(np.float64)))
    y = normalise_rows(centred_table(sp.right.vectors.astype(np.float64)))
    lpos = {k: i for i, k in enumerate(sp.left.ids.tolist())}
    rpos = {k: i for i, k in enumerate(sp.right.ids.tolist())}
    truth = {lpos[a]: rpos[b] for a, b in partner.items()}
    sl = np.array([lpos[a] for a in sp.seeds[:, 0]])
    sr = np.array([rpos[b] for b in sp.seeds[:, 1]])
    pool = [(a, b) for a, b in truth.items() if a not in set(sl.tolist())]
    pick = np.random.default_rng(0).permutation(len(pool))[:45]
    dl = np.concatenate([sl, [pool[i][0] for i in pick]])
    dr = np.concatenate([sr, [pool[i][1] for i in pick]])
    n_true = len(truth) - len(dl)
    al, ar = dl, dr
    for it in range(8):
        rows, cols, score = csls_mutual(((x @ procrustes_map(x[al].T @ y[ar])) @ y.T).astype(np.float32))
        free = ~np.isin(rows, dl) & ~np.isin(cols, dr)
        rows, cols, score = rows[free], cols[free], score[free]
        order = np.argsort(-score)
        ok = np.array([truth.get(a) == b for a, b in zip(rows[order], cols[order], strict=True)])
        f1 = 2 * np.cumsum(ok) / (np.arange(1, len(ok) + 1) + n_true)
        k = int(np.argmax(f1)) + 1
        print(f"  self-learning from 60 true pairs, iteration {it}: best F1 {f1[k - 1]:.3f} at {k} links")
        al, ar = np.concatenate([dl, rows[order[:k]]]), np.concatenate([dr, cols[order[:k]]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
