"""Synthetic embedding pairs with local isometry and known truth (unit tests, scale benchmarks).

Latent points on a low-dimensional manifold are pushed through two different smooth random nonlinear
maps (random two-layer tanh networks) into different dimensions, then L2-normalised: short distances
are preserved up to scale, long ones distorted, like two real encoders (benchmark.md, "Synthetic data").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SyntheticPair:
    """Two tables with fresh independent ids and shuffled rows, seeds, and the truth (kept apart)."""

    left_ids: np.ndarray
    left: np.ndarray
    right_ids: np.ndarray
    right: np.ndarray
    seed_left: np.ndarray
    seed_right: np.ndarray
    truth_left: np.ndarray
    truth_right: np.ndarray


def _encoder(latent_dim: int, out_dim: int, hidden: int, scale: float, rng: np.random.Generator):
    w1 = rng.normal(0, scale / np.sqrt(latent_dim), (latent_dim, hidden))
    b1 = rng.normal(0, 0.1, hidden)
    w2 = rng.normal(0, 1 / np.sqrt(hidden), (hidden, out_dim))

    def f(z: np.ndarray) -> np.ndarray:
        y = np.tanh(z @ w1 + b1) @ w2
        return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)

    return f


def make_pair(
    n_objects: int = 2000,
    alpha: float = 0.3,
    n_seeds: int = 15,
    latent_dim: int = 8,
    dim_left: int = 48,
    dim_right: int = 32,
    noise: float = 0.0,
    seed: int = 0,
) -> SyntheticPair:
    """A left/right pair over ``n_objects`` latent objects, ``alpha`` of them shared (benchmark protocol)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_objects, latent_dim))
    f1 = _encoder(latent_dim, dim_left, 4 * dim_left, 1.0, rng)
    f2 = _encoder(latent_dim, dim_right, 4 * dim_right, 1.0, rng)
    x, y = f1(z), f2(z + noise * rng.normal(size=z.shape))
    perm = rng.permutation(n_objects)
    n_shared = int(round(alpha * n_objects))
    shared, rest = perm[:n_shared], perm[n_shared:]
    half = len(rest) // 2
    objs_l = rng.permutation(np.concatenate([shared, rest[:half]]))
    objs_r = rng.permutation(np.concatenate([shared, rest[half:]]))
    ids = rng.choice(10**9, size=len(objs_l) + len(objs_r), replace=False).astype(np.int64)
    lid, rid = ids[: len(objs_l)], ids[len(objs_l) :]
    lpos = {o: i for i, o in enumerate(objs_l.tolist())}
    rpos = {o: i for i, o in enumerate(objs_r.tolist())}
    tl = np.array([lid[lpos[o]] for o in shared.tolist()])
    tr = np.array([rid[rpos[o]] for o in shared.tolist()])
    pick = rng.choice(n_shared, size=n_seeds, replace=False)
    return SyntheticPair(lid, x[objs_l], rid, y[objs_r], tl[pick], tr[pick], tl, tr)
