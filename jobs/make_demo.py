"""Build the bundled demo dataset in data/demo/ from the real benchmark data.

1,500 WordNet 3.0 glosses drawn at random (fixed seed) from ../shared/data/wordnet, embedded by
all-mpnet-base-v2 (left, 768-d) and all-MiniLM-L6-v2 (right, 384-d), split by the benchmark protocol
(alpha 0.3, 15 seeds, fresh random ids, shuffled rows). Writes left/right/seeds/truth parquet files,
texts.parquet (the gloss of every left and right row, keyed by side and id), LICENSE.md (the WordNet 3.0
licence) and README.md. No Spark needed. From the repository root::

    python jobs/make_demo.py --data-dir ../shared/data

Exit code 0 on success, 2 on bad input (missing data), 1 if the folder would exceed its size budget.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from veclink_spark.errors import InputError, VeclinkError  # noqa: E402
from veclink_spark.splits import Split, load_corpus, make_split, write_split  # noqa: E402

LEFT_ENCODER = "all-mpnet-base-v2"
RIGHT_ENCODER = "all-MiniLM-L6-v2"
CORPUS = "wordnet"
MAX_BYTES = 10 * 1024 * 1024

log = logging.getLogger("make_demo")

WORDNET_LICENSE = """\
# Licence of the demo texts: WordNet 3.0

The texts in this folder (`texts.parquet`) are synset glosses of WordNet 3.0, and the vectors in
`left.parquet` and `right.parquet` are embeddings of those texts. WordNet is distributed by Princeton
University under the licence below, which allows free use, modification and redistribution provided
this notice accompanies every copy.

Citation: George A. Miller (1995). WordNet: A Lexical Database for English. Communications of the ACM
Vol. 38, No. 11: 39-41. Christiane Fellbaum (1998, ed.) WordNet: An Electronic Lexical Database.
Cambridge, MA: MIT Press. Princeton University "About WordNet." https://wordnet.princeton.edu/

```
WordNet Release 3.0

This software and database is being provided to you, the LICENSEE, by
Princeton University under the following license.  By obtaining, using
and/or copying this software and database, you agree that you have
read, understood, and will comply with these terms and conditions.:

Permission to use, copy, modify and distribute this software and
database and its documentation for any purpose and without fee or
royalty is hereby granted, provided that you agree to comply with
the following copyright notice and statements, including the disclaimer,
and that the same appear on ALL copies of the software, database and
documentation, including modifications that you make for internal
use or for distribution.

WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.

THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON
UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR
IMPLIED.  BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON
UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANT-
ABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE
OF THE LICENSED SOFTWARE, DATABASE OR DOCUMENTATION WILL NOT
INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR
OTHER RIGHTS.

The name of Princeton University or Princeton may not be used in
advertising or publicity pertaining to distribution of the software
and/or database.  Title to copyright in this software, database and
any associated documentation shall at all times remain with
Princeton University and LICENSEE agrees to preserve same.
```

The two encoders whose vectors are stored here (sentence-transformers `all-mpnet-base-v2` and
`all-MiniLM-L6-v2`) are published under the Apache License 2.0.
"""


def readme(args: argparse.Namespace, split: Split, sizes: dict[str, int]) -> str:
    """The README of the demo folder, with the actual counts and file sizes."""
    rows = "\n".join(f"| `{name}` | {size / 1024:,.0f} KiB |" for name, size in sorted(sizes.items()))
    return f"""\
# Demo dataset: WordNet glosses, mpnet (left) vs MiniLM-L6 (right)

A small, real vector-linking problem to try veclink-spark on. {args.n_texts:,} WordNet 3.0 synset glosses
("lemma, lemma: definition") were drawn at random (seed {args.sample_seed}) from the 12,000 glosses of the
benchmark data, embedded on CPU by two sentence encoders, and split by the benchmark protocol
(`veclink_spark.splits.make_split`, alpha = {args.alpha}, {args.seeds} seeds, split seed
{args.split_seed}):

- `left.parquet`: {len(split.left):,} rows (`id` int64, `vector` list<float32>, {split.left.dim}-d,
  L2-normalised), shared part + left-only part, embedded by **{LEFT_ENCODER}**.
- `right.parquet`: {len(split.right):,} rows, {split.right.dim}-d, shared part + right-only part, embedded by
  **{RIGHT_ENCODER}**.
- `seeds.parquet`: {split.n_seeds} known pairs (`left_id`, `right_id`) drawn from the shared part.
- `truth.parquet`: all {split.truth.shape[0]:,} true pairs (`left_id`, `right_id`, `is_seed`); score links
  against the {split.n_shared:,} non-seed ones (`jobs/score.py`, `veclink_spark.evaluate.score_links`).
- `texts.parquet`: the gloss of every row (`side` = left/right, `id`, `text`), to read what was linked.
  It is for people, not for the linker: identical texts on both sides give the answer away.
- `LICENSE.md`: the WordNet 3.0 licence, which must travel with these files.

Ids are fresh random integers, independent on the two sides, and rows are shuffled, so nothing but
the vectors connects left and right. The two encoders come from the same family (same training data and
objective), the easiest kind of pair.

Sizes:

| file | size |
|---|---|
{rows}

Regenerate (from the repository root, with the benchmark data in `../shared/data`):

```
python jobs/make_demo.py --data-dir ../shared/data --n-texts {args.n_texts} \\
    --sample-seed {args.sample_seed} \\
    --alpha {args.alpha} --seeds {args.seeds} --split-seed {args.split_seed}
```
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir", default="../shared/data", help="real-data folder (default ../shared/data)"
    )
    parser.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parents[1] / "data" / "demo"),
        help="output folder (default data/demo in this checkout)",
    )
    parser.add_argument("--n-texts", type=int, default=1500, help="glosses to sample (default 1500)")
    parser.add_argument("--sample-seed", type=int, default=20261127, help="seed of the gloss sample")
    parser.add_argument("--alpha", type=float, default=0.3, help="shared fraction (default 0.3)")
    parser.add_argument("--seeds", type=int, default=30, help="seed pairs (default 30)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the split (default 0)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        data_dir = Path(args.data_dir)
        texts_path = data_dir / CORPUS / "texts.parquet"
        if not texts_path.is_file():
            raise InputError(f"{texts_path} not found; pass --data-dir pointing at the benchmark data")
        texts = pq.read_table(texts_path).to_pandas().set_index("id")["text"]
        ids1, x = load_corpus(data_dir, CORPUS, LEFT_ENCODER)
        ids2, y = load_corpus(data_dir, CORPUS, RIGHT_ENCODER)
        pool = np.intersect1d(np.intersect1d(ids1, ids2), texts.index.to_numpy())
        if args.n_texts > pool.shape[0]:
            raise InputError(f"--n-texts {args.n_texts} exceeds the {pool.shape[0]} texts available")
        sample = np.sort(
            np.random.default_rng(args.sample_seed).choice(pool, size=args.n_texts, replace=False)
        )
        keep1, keep2 = np.isin(ids1, sample), np.isin(ids2, sample)
        split = make_split(
            (ids1[keep1], x[keep1]), (ids2[keep2], y[keep2]), args.alpha, args.seeds, args.split_seed
        )
    except VeclinkError as exc:
        log.error("%s", exc)
        return 2

    out = Path(args.out)
    write_split(split, out)
    side_tables = (("left", split.left), ("right", split.right))
    pq.write_table(
        pa.table(
            {
                "side": pa.array([s for s, t in side_tables for _ in range(len(t))], pa.string()),
                "id": pa.array(np.concatenate([t.ids for _, t in side_tables]), pa.int64()),
                "text": pa.array(
                    np.concatenate([texts.loc[t.source_ids].to_numpy() for _, t in side_tables]), pa.string()
                ),
            }
        ),
        out / "texts.parquet",
    )
    (out / "LICENSE.md").write_text(WORDNET_LICENSE)
    sizes = {
        p.name: p.stat().st_size for p in out.iterdir() if p.suffix == ".parquet" or p.name == "LICENSE.md"
    }
    (out / "README.md").write_text(readme(args, split, sizes))
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    log.info("wrote %s: %d files, %.2f MB", out, len(list(out.iterdir())), total / 1e6)
    if total > MAX_BYTES:
        log.error(
            "demo folder is %.2f MB, over the %.0f MB budget; lower --n-texts", total / 1e6, MAX_BYTES / 1e6
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
