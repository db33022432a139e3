"""The synthetic case of the fitted-model tests (tests/test_model.py, tests/test_spark_connect.py): a
synthetic pair with 15 % of the left rows held back as rows that arrive later, written as parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from veclink_spark.synthetic import SyntheticPair, make_pair


def write_vectors(path: Path, ids: np.ndarray, x: np.ndarray) -> None:
    """An embedding table (id, vector as list<float32>) as one parquet file."""
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1).astype(np.float32)), x.shape[1])
    pq.write_table(pa.table({"id": ids, "vector": vectors.cast(pa.list_(pa.float32()))}), path)


def write_model_case(folder: Path) -> tuple[SyntheticPair, np.ndarray]:
    """left.parquet (the fitted rows), new.parquet (held back), right.parquet and seeds.parquet in
    ``folder``; returns the pair and the mask of held-back left rows."""
    pair = make_pair(n_objects=400, alpha=0.3, n_seeds=15, seed=1)
    rng = np.random.default_rng(3)
    new = (rng.random(len(pair.left_ids)) < 0.15) & ~np.isin(pair.left_ids, pair.seed_left)
    write_vectors(folder / "left.parquet", pair.left_ids[~new], pair.left[~new])
    write_vectors(folder / "new.parquet", pair.left_ids[new], pair.left[new])
    write_vectors(folder / "right.parquet", pair.right_ids, pair.right)
    pq.write_table(
        pa.table({"left_id": pair.seed_left, "right_id": pair.seed_right}), folder / "seeds.parquet"
    )
    return pair, new
