"""Real-pair scale benchmark: all 117,659 WordNet 3.0 glosses embedded by two torch-free encoders with
``jobs/embed.py`` on Spark, split by the benchmark protocol (``--alpha``, default 0.3; 15 seeds, fresh
ids), linked by ``jobs/link.py``; and, for comparison, the same protocol on a random 12,000-gloss subset
of the same embeddings (tables of about 7,800 rows a side, the size of the committed grid's WordNet cells).

    python benchmarks/wordnet_full.py [--cache DIR] [--left minilm-l6-int8] [--right e5-small-q4]

Needs ``../shared/data/wordnet-full/texts.parquet`` and the encoders (``bash scripts/install_encoders.sh``).
Embeddings and splits are cached in ``--cache`` (default ``~/.cache/veclink-spark/wordnet-full``, outside
the repository); the embedding time is measured once, when an encoder's table is first made. Results
are appended to ``benchmarks/scale/wordnet-full.jsonl`` and the table ``benchmarks/scale/WORDNET.md``
is rewritten from them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "scale"
sys.path.insert(0, str(ROOT))

from benchmarks.scale import CUTS, run_one  # noqa: E402
from veclink_spark.encoders import vectors_to_arrow  # noqa: E402
from veclink_spark.splits import make_split  # noqa: E402

TEXTS = ROOT.parent / "shared" / "data" / "wordnet-full" / "texts.parquet"
SUBSET_SEED = 20261127  # the seed the shared 12,000-gloss WordNet sample was drawn with
SUBSET_SIZE = 12_000


def _embed(cache: Path, encoder: str) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(ids, vectors) of every gloss by ``encoder``, embedding them with the Spark job when not cached;
    the seconds the embedding took (None when it was cached before)."""
    table = cache / f"emb-{encoder}"
    dump = cache / f"emb-{encoder}.parquet"
    seconds = None
    if not dump.is_file():
        cmd = [sys.executable, "jobs/embed.py", "--input", str(TEXTS), "--output", str(table)]
        cmd += ["--encoder", encoder, "--overwrite"]
        t0 = time.time()
        subprocess.run(cmd, cwd=ROOT, check=True)
        seconds = round(time.time() - t0, 1)
        # Read back once through Spark (the table is Delta) into one parquet file for the splits.
        code = (
            "import sys; from veclink_spark.session import get_or_create_session as g; "
            "g().read.format('delta').load(sys.argv[1]).toPandas().to_parquet(sys.argv[2])"
        )
        subprocess.run([sys.executable, "-c", code, str(table), str(dump)], cwd=ROOT, check=True)
        (cache / f"emb-{encoder}.json").write_text(json.dumps({"seconds": seconds}))
    t = pq.read_table(dump)
    order = np.argsort(t.column("id").to_numpy())
    ids = t.column("id").to_numpy()[order]
    vectors = np.stack(t.column("vector").to_numpy(zero_copy_only=False))[order].astype(np.float32)
    return ids, vectors, seconds


def _write(split, folder: Path) -> None:  # type: ignore[no-untyped-def]
    """A split in the scale benchmark's layout: left/ and right/ folders, seeds and truth parquet."""
    for name, side in (("left", split.left), ("right", split.right)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        tab = pa.table({"id": pa.array(side.ids, pa.int64()), "vector": vectors_to_arrow(side.vectors)})
        pq.write_table(tab, folder / name / "part-0.parquet")
    seeds = {"left_id": split.seeds[:, 0], "right_id": split.seeds[:, 1]}
    pq.write_table(pa.table(seeds), folder / "seeds.parquet")
    truth = {"left_id": split.truth[:, 0], "right_id": split.truth[:, 1], "is_seed": split.truth_is_seed}
    pq.write_table(pa.table(truth), folder / "truth.parquet")


def report(rows: list[dict]) -> None:
    lines = [
        "# Real pair at scale: WordNet 3.0, all glosses",
        "",
        "Command: `python benchmarks/wordnet_full.py`. All 117,659 glosses embedded by two torch-free",
        "encoders with `jobs/embed.py` (local[*], this 2-core machine), split by the benchmark protocol",
        "(`--alpha`, 0.3 by default; 15 in-domain seeds, fresh ids, split seed 0), linked by",
        "`jobs/link.py` with the default configuration; `12k subset` is the same protocol on 12,000",
        "glosses drawn at random from the same embeddings. Seconds and peak memory are the link job's",
        "(process tree). `est`: the run's `estimated_precision`; `0.9` / `0.95`: the links kept at",
        "`--min-precision` 0.9 / 0.95 (`precision_estimate` at least the cut), their count and measured",
        "precision (recorded since the estimate's cuts were added to the benchmark; `-` before).",
        "`search`: the summary's `search_recall` at the probes the last full-table round searched,",
        "and the probes it advises when they are more (`-`: no full-table round, or recorded before",
        "it was measured).",
        "",
        "| pair | glosses | alpha | rows a side | seconds | peak GiB | precision | recall | F1 | est | "
        "0.9: n / P | 0.95: n / P | search | verdict | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        est = r.get("estimated_precision")
        sr = r.get("search_recall") or {}
        at = sr.get("recall_at_probes")
        search = "-" if at is None else f"{at:.3f} at {sr['probes']}"
        if sr.get("probes_for_target") and sr["probes_for_target"] > sr["probes"]:
            search += f" (advice: {sr['probes_for_target']})"
        cuts = [r.get(f"kept_at_{c}") for c in CUTS]
        lines.append(
            f"| {r['left']} / {r['right']} | {r['name']} | {r.get('alpha', 0.3)} | {r['rows']:,} | "
            f"{r['seconds']} | "
            f"{r['peak_gib']} | "
            f"{r.get('precision', float('nan')):.3f} | {r.get('recall', float('nan')):.3f} | "
            f"{r.get('f1', float('nan')):.3f} | {'-' if est is None else f'{est:.3f}'} | "
            + " | ".join("-" if c is None else f"{c['links']:,} / {c['precision']:.3f}" for c in cuts)
            + f" | {search} | {r.get('verdict', '-')} | {r.get('code', '-')} |"
        )
    embeds = {r["left"]: r.get("embed_left_s") for r in rows} | {
        r["right"]: r.get("embed_right_s") for r in rows
    }
    lines.append("")
    for r in rows:
        if r.get("note"):  # how a run's time was taken, when not on a quiet machine
            lines.append(f"- {r['name']} at {r.get('code', '-')}: {r['note']}")
    for enc, s in embeds.items():
        if s:
            lines.append(f"- embedding all 117,659 glosses with `{enc}`: {s} s")
    (OUT / "WORDNET.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "veclink-spark" / "wordnet-full"))
    p.add_argument("--left", default="minilm-l6-int8")
    p.add_argument("--right", default="e5-small-q4")
    p.add_argument("--alpha", type=float, default=0.3)
    p.add_argument("--seeds", type=int, default=15)
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    results = OUT / "wordnet-full.jsonl"
    if not args.report_only:
        if not TEXTS.is_file():
            print(f"{TEXTS} not found: this benchmark needs the shared WordNet texts", file=sys.stderr)
            return 2
        cache = Path(args.cache)
        (cache / "runs").mkdir(parents=True, exist_ok=True)
        lids, lx, ls = _embed(cache, args.left)
        rids, rx, rs = _embed(cache, args.right)
        seconds = {}
        for enc, s in ((args.left, ls), (args.right, rs)):
            info = cache / f"emb-{enc}.json"
            seconds[enc] = s if s is not None else json.loads(info.read_text())["seconds"]
        rng = np.random.default_rng(SUBSET_SEED)
        subset = np.sort(rng.choice(len(lids), SUBSET_SIZE, replace=False))
        for name, pick in (("117,659 (all)", slice(None)), ("12k subset", subset)):
            split = make_split((lids[pick], lx[pick]), (rids[pick], rx[pick]), args.alpha, args.seeds, seed=0)
            tag = "all" if name.endswith("(all)") else "12k"
            # the split's every parameter in its name: a cached split is reused only for the same one
            folder = cache / f"split-{args.left}-{args.right}-a{args.alpha}-s{args.seeds}-{tag}"
            if not (folder / "truth.parquet").is_file():
                _write(split, folder)
            rec = run_one(folder, len(split.left.ids), "spark", cache / "runs", None)
            rec.update(
                name=name,
                alpha=args.alpha,
                seeds=args.seeds,
                left=args.left,
                right=args.right,
                embed_left_s=seconds[args.left],
                embed_right_s=seconds[args.right],
            )
            print(json.dumps(rec), flush=True)
            with open(results, "a") as f:
                f.write(json.dumps(rec) + "\n")
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
