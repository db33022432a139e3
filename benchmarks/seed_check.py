"""The seed check's rule, measured: rank and gap of right and wrong seeds under the maps of real runs.

For every cell cached by ``python benchmarks/trust.py run`` that took off, the map is the orthogonal
map fitted on the run's links (seed rows left out), as the seed check fits one on a fit's links. The
cell's 15 seeds are the right seeds; wrong seeds are the same seeds with their right rows permuted
(20 permutations, each seed given another seed's partner). Each rule is scored by how many right
seeds it names (false alarms) and how many wrong ones it misses, over all cells. The stalled cells
are left out: the seed check does not judge seeds by a fit that did not take off.

    python benchmarks/seed_check.py        # writes benchmarks/wrong_seeds/SEED_CHECK.md
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.trust import CACHE, DATA, cells, key, split_of  # noqa: E402
from veclink_spark.diagnostics import SEED_MIN_GAP, SeedRanks, seed_ranks  # noqa: E402
from veclink_spark.kernels.centre import centred_table, normalise_rows  # noqa: E402

OUT = ROOT / "benchmarks" / "wrong_seeds" / "SEED_CHECK.md"
PERMUTATIONS = 20


def cell_ranks(name: str, cached: dict) -> tuple[SeedRanks, SeedRanks]:
    """(the right seeds' ranks, the wrong seeds' ranks) under the map of the cell's links."""
    cell = next(c for c in cells() if key(c) == name)
    sp = split_of(cell, DATA)
    x = normalise_rows(centred_table(sp.left.vectors.astype(np.float64)))
    y = normalise_rows(centred_table(sp.right.vectors.astype(np.float64)))
    lpos = {k: i for i, k in enumerate(sp.left.ids.tolist())}
    rpos = {k: i for i, k in enumerate(sp.right.ids.tolist())}
    links = cached["links"]
    found = ~np.asarray(links["is_seed"], bool)
    ll = np.array([lpos[a] for a in np.asarray(links["left_id"])[found]], dtype=np.int64)
    lr = np.array([rpos[b] for b in np.asarray(links["right_id"])[found]], dtype=np.int64)
    sl = np.array([lpos[a] for a in sp.seeds[:, 0]])
    sr = np.array([rpos[b] for b in sp.seeds[:, 1]])
    free = ~np.isin(ll, sl) & ~np.isin(lr, sr)
    pairs = (x[ll[free]], y[lr[free]])
    right = seed_ranks((x[sl], y[sr]), pairs)
    rng = np.random.default_rng(1)
    rank, gap = [], []
    for _ in range(PERMUTATIONS):
        p = rng.permutation(len(sl))
        moved = p != np.arange(len(sl))
        got = seed_ranks((x[sl], y[sr[p]]), pairs)
        rank.append(got.rank[moved])
        gap.append(got.gap[moved])
    return right, SeedRanks(np.concatenate(rank), np.concatenate(gap))


def main() -> int:
    rows = []
    for path in sorted(CACHE.glob("*.pkl")):
        name = path.stem
        if name.startswith("neg-"):
            continue
        with open(path, "rb") as fh:
            cached = pickle.load(fh)
        if (cached["facts"].get("estimated_precision") or 0.0) < 0.5:
            continue  # a stall: the seed check does not run on it
        right, wrong = cell_ranks(name, cached)
        rows.append((name, len(cached["links"]["left_id"]), right, wrong))
        print(name, int(right.rank.max()), round(float(right.gap.max()), 3), int(wrong.rank.min()),
              round(float(wrong.gap.min()), 3), flush=True)  # fmt: skip
    rules = {
        "rank > 5": lambda r: r.rank > 5,
        "rank > 10": lambda r: r.rank > 10,
        f"gap > {SEED_MIN_GAP}": lambda r: r.gap > SEED_MIN_GAP,
        f"rank > 5 and gap > {SEED_MIN_GAP} (the check)": lambda r: r.doubted(5),
    }
    lines = [
        "# The seed check's rule",
        "",
        "Made by `python benchmarks/seed_check.py` from the runs cached by `python benchmarks/trust.py run`",
        "(see its doc). The map: orthogonal, fitted on a run's links (seed rows left out). Right seeds:",
        f"the cell's 15 seeds; wrong: the same seeds with their right rows permuted ({PERMUTATIONS} times).",
        "Rank: of the seed's partner among the links' and seeds' rows (1 = first); gap: the best other",
        "cosine minus the partner's; both the worse of the two directions. Stalled runs are left out.",
        "",
        "| cell | links | right seeds: worst rank / largest gap | wrong seeds: best rank / smallest gap |",
        "|---|---|---|---|",
    ]
    for name, n, right, wrong in rows:
        lines.append(
            f"| {name} | {n} | {int(right.rank.max())} / {right.gap.max():.3f} | "
            f"{int(wrong.rank.min())} / {wrong.gap.min():.3f} |"
        )
    lines += ["", "| rule | right seeds named | wrong seeds missed |", "|---|---|---|"]
    for rule, named in rules.items():
        fa = sum(int(named(r).sum()) for _, _, r, _ in rows)
        n_right = sum(len(r.rank) for _, _, r, _ in rows)
        miss = sum(int((~named(w)).sum()) for _, _, _, w in rows)
        n_wrong = sum(len(w.rank) for _, _, _, w in rows)
        lines.append(f"| {rule} | {fa} of {n_right} | {miss} of {n_wrong} |")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
