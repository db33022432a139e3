#!/usr/bin/env python
"""Exact, full-matrix numpy model of veclink's refinement stages on one benchmark split (no Spark, no
blocking, no seed weight): the tool behind the prototype measurements in docs/method.md.

It builds the protocol split (``veclink_spark.benchmark.splits.make_split``), applies VecMap's
normalisation, starts from the rank-truncated Procrustes map of the seeds, then runs self-learning
with CSLS mutual nearest neighbours over all rows, optionally with stochastic dictionary induction
(a kept share of ``--keep`` doubling every ``--doubling`` iterations; dropped pairs chosen by
``kernels.keep_mask``, as the engine does, or by numpy's generator). It prints the P / R / F1 of the
dictionary per iteration and at the end, then the polish variants: ``--bags`` maps, each fitted on a
random share of the final dictionary, P / R / F1 by the number of maps that agree.

    python scripts/exact_self_learning.py debian all-MiniLM-L6-v2 all-MiniLM-L3-v2-paraphrase \\
        --iterations 30 --doubling 5 --shares 0.15,0.3,0.5

Needs ../shared/data (the benchmark's embeddings). Memory: two N x N float32 matrices (N = table
rows; 7,800 for WordNet at alpha 0.3, ~0.5 GB).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from veclink_spark import kernels  # noqa: E402
from veclink_spark.benchmark.baselines import vecmap_normalise  # noqa: E402
from veclink_spark.benchmark.splits import load_corpus, make_split  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("left_encoder")
    ap.add_argument("right_encoder")
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--alpha", type=float, default=0.3)
    ap.add_argument("--seeds", type=int, default=15)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--keep", type=float, default=0.1, help="first kept share; 1 = no dropout")
    ap.add_argument("--doubling", type=int, default=5, help="iterations between doublings of the share")
    ap.add_argument("--mask", choices=("hash", "numpy"), default="hash")
    ap.add_argument("--csls-k", type=int, default=10)
    ap.add_argument("--bags", type=int, default=8)
    ap.add_argument("--shares", default="0.15,0.3,0.5", help="polish shares to try, comma separated")
    args = ap.parse_args(argv)

    c1 = load_corpus(args.data_dir, args.corpus, args.left_encoder)
    c2 = load_corpus(args.data_dir, args.corpus, args.right_encoder)
    sp = make_split(c1, c2, alpha=args.alpha, n_seeds=args.seeds, seed=args.split_seed)
    x = vecmap_normalise(sp.left.vectors).astype(np.float32)
    y = vecmap_normalise(sp.right.vectors).astype(np.float32)
    lpos = {k: i for i, k in enumerate(sp.left.ids.tolist())}
    rpos = {k: i for i, k in enumerate(sp.right.ids.tolist())}
    sl = np.array([lpos[k] for k in sp.seeds[:, 0].tolist()])
    sr = np.array([rpos[k] for k in sp.seeds[:, 1].tolist()])
    truth = {
        (lpos[a], rpos[b])
        for a, b, s in zip(sp.truth[:, 0].tolist(), sp.truth[:, 1].tolist(), sp.truth_is_seed, strict=True)
        if not s
    }
    rng = np.random.default_rng(0)

    def fit(dl: np.ndarray, dr: np.ndarray, rank: int | None = None) -> np.ndarray:
        u, _, vt = np.linalg.svd(x[dl].astype(np.float64).T @ y[dr].astype(np.float64), full_matrices=False)
        if rank:
            u, vt = u[:, :rank], vt[:rank]
        return (u @ vt).astype(np.float32)

    def csls(w: np.ndarray) -> np.ndarray:
        s = (x @ w) @ y.T
        s[sl, :] = -9.0
        s[:, sr] = -9.0
        k = args.csls_k
        rl = np.partition(s, -k, axis=1)[:, -k:].mean(1)
        rr = np.partition(s, -k, axis=0)[-k:, :].mean(0)
        return 2 * s - rl[:, None] - rr[None, :]

    def mutual(c: np.ndarray, keep: float, salt: int) -> tuple[np.ndarray, np.ndarray]:
        if keep < 1.0:
            if args.mask == "hash":
                mask = kernels.keep_mask(sp.left.ids, sp.right.ids, keep, salt)
            else:
                mask = rng.random(c.shape, dtype=np.float32) < keep
            c = np.where(mask, c, -1e9)
        f, b = c.argmax(1), c.argmax(0)
        rows = np.arange(len(f))
        m = b[f] == rows
        m[sl] = False
        return rows[m], f[m]

    def score(dl: np.ndarray, dr: np.ndarray) -> str:
        got = set(zip(dl.tolist(), dr.tolist(), strict=True))
        c = len(got & truth)
        p, r = c / max(len(got), 1), c / len(truth)
        return f"P {p:.3f} R {r:.3f} F1 {2 * p * r / max(p + r, 1e-9):.3f} ({len(got)} pairs)"

    t0 = time.time()
    w = fit(sl, sr, rank=len(sl))
    for it in range(args.iterations):
        keep = min(1.0, args.keep * 2.0 ** (it // args.doubling))
        dl, dr = mutual(csls(w), keep, salt=it)
        w = fit(np.concatenate([sl, dl]), np.concatenate([sr, dr]))
        print(
            f"iteration {it:2d} keep {keep:.2f} dictionary {score(dl, dr)}  {time.time() - t0:.0f} s",
            flush=True,
        )
    fl, fr = mutual(csls(w), 1.0, 0)
    print("take-off dictionary:", score(fl, fr), flush=True)
    prng = np.random.default_rng(1)
    for share in (float(v) for v in args.shares.split(",")):
        votes: dict[tuple[int, int], int] = {}
        for _ in range(args.bags):
            pick = prng.random(len(fl)) < share
            bl, br = mutual(csls(fit(np.concatenate([sl, fl[pick]]), np.concatenate([sr, fr[pick]]))), 1.0, 0)
            for p in zip(bl.tolist(), br.tolist(), strict=True):
                votes[p] = votes.get(p, 0) + 1
        for need in range(args.bags, max(args.bags - 3, 0), -1):
            kept = [p for p, v in votes.items() if v >= need]
            kl = np.array([p[0] for p in kept], dtype=np.int64)
            kr = np.array([p[1] for p in kept], dtype=np.int64)
            print(f"polish share {share:.2f}, {need} of {args.bags} maps: {score(kl, kr)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
