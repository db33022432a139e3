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


@dataclass
class SyntheticTables:
    """Several tables of one set of latent objects, one per encoder, with fresh independent ids."""

    ids: list[np.ndarray]
    vectors: list[np.ndarray]
    objects: list[np.ndarray]  # the latent object of each row (truth: for scoring only)
    seed_objects: np.ndarray  # known objects, present in every table


def make_tables(
    n_objects: int = 2000,
    alpha: float = 0.3,
    n_seeds: int = 15,
    dims: tuple[int, ...] = (48, 32, 40),
    latent_dim: int = 8,
    seed: int = 0,
) -> SyntheticTables:
    """One table per entry of ``dims`` over ``n_objects`` latent objects: ``alpha`` of them in every
    table, the rest split evenly, one table each (the three-model protocol of benchmarks/use_cases);
    rows shuffled, ids fresh; ``n_seeds`` seeds drawn from the shared objects."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_objects, latent_dim))
    perm = rng.permutation(n_objects)
    n_shared = int(round(alpha * n_objects))
    shared, rest = perm[:n_shared], perm[n_shared:]
    part = len(rest) // len(dims)
    ids = rng.choice(10**12, size=n_objects * len(dims), replace=False).astype(np.int64)
    out = SyntheticTables([], [], [], rng.choice(shared, size=n_seeds, replace=False))
    for t, dim in enumerate(dims):
        objs = rng.permutation(np.concatenate([shared, rest[t * part : (t + 1) * part]]))
        out.vectors.append(_encoder(latent_dim, dim, 4 * dim, 1.0, rng)(z[objs]))
        out.ids.append(ids[t * n_objects : t * n_objects + len(objs)])
        out.objects.append(objs)
    return out


def write_scale_pair(
    folder: str,
    rows: int,
    alpha: float = 0.3,
    n_seeds: int = 15,
    dim_left: int = 768,
    dim_right: int = 384,
    latent_dim: int = 16,
    clusters: int = 64,
    noise: float = 0.05,
    seed: int = 0,
    chunk: int = 100_000,
    seed_clusters: int = 0,
) -> dict[str, int]:
    """Write a large synthetic pair with the structure real encoders have to ``folder``: ``left/`` and
    ``right/`` (parquet parts, columns id, vector), ``seeds.parquet`` and ``truth.parquet`` (left_id,
    right_id; the truth is for scoring only). About ``rows`` rows a side, generated in chunks (memory is
    bounded by ``chunk``).

    Structure: latent points drawn from ``clusters`` anisotropic Gaussian clusters, pushed through two
    different random two-layer tanh networks, plus a shared offset direction per encoder (embeddings
    of one encoder are not centred on the sphere), with latent noise on the right side so that local
    neighbourhoods agree imperfectly; then L2-normalised. Ids are fresh random int64 per side.

    Seeds: ``n_seeds`` shared objects drawn from anywhere, or with ``seed_clusters`` > 0 from that many
    clusters only (users' seeds often come from one corner of their data); the tables are the same.
    """
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n_objects = int(round(rows / (alpha + (1 - alpha) / 2)))
    centres = rng.normal(0, 1.0, (clusters, latent_dim))
    scales = rng.uniform(0.1, 0.6, (clusters, latent_dim))  # anisotropic clusters
    weights = rng.dirichlet(np.full(clusters, 2.0))
    encoders = []
    for dim in (dim_left, dim_right):
        hidden = 512
        w1 = rng.normal(0, 1 / np.sqrt(latent_dim), (latent_dim, hidden))
        b1 = rng.normal(0, 0.1, hidden)
        w2 = rng.normal(0, 1 / np.sqrt(hidden), (hidden, dim))
        offset = rng.normal(0, 1, dim)
        offset *= 0.8 / np.linalg.norm(offset)
        encoders.append((w1, b1, w2, offset))
    # Which objects each side holds: shared, left-only, right-only (protocol of design/benchmark.md).
    kind = rng.choice(3, size=n_objects, p=[alpha, (1 - alpha) / 2, (1 - alpha) / 2])
    left_rows = np.flatnonzero(kind != 2)
    right_rows = np.flatnonzero(kind != 1)
    ids = rng.choice(2**62, size=len(left_rows) + len(right_rows), replace=False).astype(np.int64)
    left_ids = np.full(n_objects, -1, dtype=np.int64)
    right_ids = np.full(n_objects, -1, dtype=np.int64)
    left_ids[left_rows] = ids[: len(left_rows)]
    right_ids[right_rows] = ids[len(left_rows) :]
    cluster = np.empty(n_objects, dtype=np.int64)
    os.makedirs(os.path.join(folder, "left"), exist_ok=True)
    os.makedirs(os.path.join(folder, "right"), exist_ok=True)
    for part, start in enumerate(range(0, n_objects, chunk)):
        crng = np.random.default_rng([seed, part])
        n = min(chunk, n_objects - start)
        c = crng.choice(clusters, size=n, p=weights)
        cluster[start : start + n] = c
        z = centres[c] + scales[c] * crng.normal(size=(n, latent_dim))
        for side, (w1, b1, w2, offset) in zip(("left", "right"), encoders, strict=True):
            zz = z if side == "left" else z + noise * crng.normal(size=z.shape)
            y = np.tanh(zz @ w1 + b1) @ w2
            y = y / np.linalg.norm(y, axis=1, keepdims=True) + offset
            y = (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)
            sel = kind[start : start + n] != (2 if side == "left" else 1)
            sid = (left_ids if side == "left" else right_ids)[start : start + n][sel]
            # Rows in a random order within the part, so row order carries no identity signal.
            perm = crng.permutation(len(sid))
            vec = y[sel][perm]
            arr = pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), vec.shape[1])
            table = pa.table({"id": sid[perm], "vector": arr.cast(pa.list_(pa.float32()))})
            pq.write_table(table, os.path.join(folder, side, f"part-{part:04d}.parquet"))
    shared = np.flatnonzero(kind == 0)
    pq.write_table(
        pa.table({"left_id": left_ids[shared], "right_id": right_ids[shared]}),
        os.path.join(folder, "truth.parquet"),
    )
    if seed_clusters > 0:
        # a few clusters that hold enough shared objects, drawn at random; the seeds from them alone
        held = np.bincount(cluster[shared], minlength=clusters)
        chosen = rng.permutation(np.flatnonzero(held >= max(1, n_seeds // seed_clusters)))[:seed_clusters]
        shared_pool = shared[np.isin(cluster[shared], chosen)]
        seeds = shared_pool[rng.choice(len(shared_pool), size=n_seeds, replace=False)]
    else:
        seeds = shared[rng.choice(len(shared), size=n_seeds, replace=False)]
    pq.write_table(
        pa.table({"left_id": left_ids[seeds], "right_id": right_ids[seeds]}),
        os.path.join(folder, "seeds.parquet"),
    )
    return {"left": len(left_rows), "right": len(right_rows), "shared": len(shared)}
