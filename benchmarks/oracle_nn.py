"""How separable a scale pair is for an orthogonal map, independent of the method: fit the map on ALL
true pairs (centred tables, as the linker centres them), then, for a sample of shared left rows, count
how often the true partner is the exact nearest right row (cosine).

    python benchmarks/oracle_nn.py DATA_FOLDER [--sample 10000]

DATA_FOLDER is a pair written by ``benchmarks/scale.py`` (``left/``, ``right/``, ``truth.parquet``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from veclink_spark.kernels.centre import normalise_rows  # noqa: E402
from veclink_spark.kernels.maps import procrustes_map  # noqa: E402


def _centred(folder: Path, side: str) -> tuple[np.ndarray, np.ndarray]:
    t = pq.read_table(folder / side)
    ids = t.column("id").to_numpy()
    x = t.column("vector").combine_chunks().flatten().to_numpy().reshape(len(ids), -1).astype(np.float32)
    # The linker's centring (unit, minus the mean unit vector, unit), in float32 to fit a million rows
    # in memory (kernels.centre.centred_table works in float64).
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x -= x.mean(axis=0, dtype=np.float64).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return ids, x


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("--sample", type=int, default=10_000)
    args = p.parse_args(argv)
    folder = Path(args.folder)
    t0 = time.time()
    li, lx = _centred(folder, "left")
    ri, rx = _centred(folder, "right")
    truth = pq.read_table(folder / "truth.parquet").to_pandas()
    lpos = {k: i for i, k in enumerate(li.tolist())}
    rpos = {k: i for i, k in enumerate(ri.tolist())}
    a = np.array([lpos[k] for k in truth["left_id"].tolist()])
    b = np.array([rpos[k] for k in truth["right_id"].tolist()])
    w = procrustes_map(lx[a].astype(np.float64).T @ rx[b].astype(np.float64))
    pick = np.random.default_rng(0).choice(len(a), min(args.sample, len(a)), replace=False)
    q = normalise_rows(lx[a[pick]] @ w).astype(np.float32)
    index = faiss.IndexFlatIP(rx.shape[1])
    index.add(rx)
    _, nn = index.search(q, 1)
    share = float((nn[:, 0] == b[pick]).mean())
    print(
        f"{folder.name}: true partner is the nearest row for {share:.3f} of {len(pick)} shared rows "
        f"({time.time() - t0:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
