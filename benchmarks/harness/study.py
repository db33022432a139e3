"""The command line of a small study (wrong_seeds.py, anchor_information.py, precision.py): measure
rows, one JSON line each in ``OUT/results.jsonl``, then render ``OUT/REPORT.md`` from that file.

Every study takes ``--data-dir`` (the shared corpora), ``--cells`` (corpus:left:right), ``--split-seed``,
``--out`` and ``--report-only`` (and ``--append`` where a run replaces the earlier rows by default); its
own options come from ``add_arguments``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from veclink_spark.errors import VeclinkError

ROOT = Path(__file__).resolve().parents[2]


def study_main(
    argv: list[str] | None,
    description: str,
    out_default: Path,
    cells: list[str],
    add_arguments: Callable[[argparse.ArgumentParser], None],
    measure: Callable[[argparse.Namespace], Iterable[dict[str, Any]]],
    report: Callable[[list[dict[str, Any]], Path], None],
    append: bool = True,
) -> int:
    """Parse ``argv``, run ``measure`` (unless --report-only), render the report. ``append``: keep the
    rows of earlier runs (False: a run replaces them, unless it is given ``--append``). Exit codes: 0
    done, 2 bad input (no shared data, or a VeclinkError: nothing more written)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--cells", nargs="+", default=cells, help="corpus:left-encoder:right-encoder")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--out", default=str(out_default))
    ap.add_argument("--report-only", action="store_true")
    if not append:
        ap.add_argument("--append", action="store_true", help="keep the rows of earlier runs in OUT")
    add_arguments(ap)
    args = ap.parse_args(argv)
    append = append or args.append
    out = Path(args.out)
    results = out / "results.jsonl"
    if not args.report_only:
        if not Path(args.data_dir).is_dir():
            print(f"error: {args.data_dir} not found; pass --data-dir", file=sys.stderr)
            return 2
        out.mkdir(parents=True, exist_ok=True)
        if not append:
            results.write_text("", encoding="utf-8")
        try:
            for row in measure(args):
                print(json.dumps(row), flush=True)
                with results.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
        except VeclinkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line.strip()]
    report(rows, out / "REPORT.md")
    print(f"report: {out / 'REPORT.md'}")
    return 0
