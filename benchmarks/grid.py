#!/usr/bin/env python
"""Run a benchmark grid on the real encoders and write the report.

    python benchmarks/grid.py --grid benchmarks/grids/quick.yaml [--out-dir bench-out]
        [--report bench-out/REPORT.md]
        [--methods veclink self_learning ...] [--engine reference|spark] [--corpora debian]
        [--pairs mpnet/L6] [--data-dir ../shared/data] [--threads 2] [--keep-going] [--dry-run]
    python benchmarks/grid.py --report-only --out-dir bench-out --report benchmarks/targets/REPORT.md

Each finished run is one JSON line in OUT/results.jsonl; runs already there are skipped, so re-running
the same command resumes an interrupted grid. One log line per run with its scores and an ETA.
With ``--engine spark`` veclink runs through the Spark Linker (jobs/link.py's) on a local session, on the
split written as parquet under OUT/splits/. Grids: benchmarks/grids/{smoke,quick,paper}.yaml.

Exit code 0 on success, 2 on an invalid grid or missing input (nothing run), 1 on any other failure.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from benchmarks.harness.runner import ENGINES, METHODS, load_grid, plan_runs, read_results, run_grid  # noqa: E402
from veclink_spark.errors import ConfigError, InputError, VeclinkError  # noqa: E402

log = logging.getLogger("veclink.benchmark")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Run a veclink-spark benchmark grid and write its report.")
    p.add_argument("--grid", help="grid YAML (benchmarks/grids/smoke.yaml, quick.yaml, paper.yaml)")
    p.add_argument("--out-dir", default="bench-out", help="results folder (default bench-out)")
    p.add_argument("--report", default=None, help="write the Markdown report here (figures next to it)")
    p.add_argument("--report-only", action="store_true", help="only render the report from OUT/results.jsonl")
    p.add_argument(
        "--methods", nargs="+", default=None, help=f"run only these methods ({', '.join(METHODS)})"
    )
    p.add_argument("--corpora", nargs="+", default=None, help="run only these corpora of the grid")
    p.add_argument(
        "--pairs",
        nargs="+",
        default=None,
        help="run only these pairs of the grid: LEFT:RIGHT encoder names or short labels (mpnet/L6)",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="reference",
        help="veclink engine: in-process reference (default) or the Spark Linker",
    )
    p.add_argument("--data-dir", default=None, help="override the grid's data_dir")
    p.add_argument("--master", default="local[2]", help="Spark master for --engine spark (default local[2])")
    p.add_argument("--threads", type=int, default=None, help="cap BLAS / OpenMP / faiss threads")
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="record a failing run as an error (re-tried next time) and continue",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print how many runs are planned / pending; run nothing"
    )
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if not args.report_only and not args.grid:
        p.error("--grid is required unless --report-only")
    if args.report_only and not args.report:
        p.error("--report-only needs --report")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    return args


def code_version() -> str | None:
    """veclink-spark's version and, in a git checkout, the commit (``-dirty`` with local changes)."""
    from veclink_spark import __version__

    root = Path(__file__).resolve().parents[1]
    try:  # read-only git queries
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):  # not a checkout, or no git: the version alone
        return __version__
    return f"{__version__} ({commit}{'-dirty' if dirty else ''})"


def recorded_command(args: list[str]) -> str:
    """The command line as the results and the report record it: paths inside the checkout relative to
    it, any other absolute path as ``<scratch>/NAME`` (a reader's machine has neither folder)."""
    root = Path(__file__).resolve().parents[1]

    def shown(arg: str) -> str:
        if not arg.startswith("/"):
            return arg
        path = Path(arg)
        try:
            return str(path.resolve().relative_to(root))
        except ValueError:
            return f"<scratch>/{path.name}"

    return "python " + shlex.join(["benchmarks/grid.py", *(shown(a) for a in args)])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "pyspark", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    command = recorded_command(argv if argv is not None else sys.argv[1:])
    try:
        if not args.report_only:
            grid = load_grid(args.grid).restrict(args.corpora, args.pairs, args.methods)
            if args.data_dir:
                grid = replace(grid, data_dir=Path(args.data_dir))
            if args.dry_run:
                runs = plan_runs(grid, args.engine)
                done = {
                    r["key"]
                    for r in read_results(Path(args.out_dir) / "results.jsonl")
                    if r.get("status") == "ok"
                }
                pending = sum(r.key not in done for r in runs)
                shape = (
                    f"{len(grid.corpora)} corpora x {len(grid.pairs)} pairs x {len(grid.seed_kinds)} seed "
                    f"kinds x {len(grid.alphas)} alphas x {len(grid.n_seeds)} n x {len(grid.split_seeds)} "
                    f"split seeds x {len(grid.methods)} methods"
                )
                print(
                    f"grid {grid.name}: {len(runs)} runs planned, {len(runs) - pending} done, "
                    f"{pending} to run ({shape})"
                )
                return 0
            version = code_version()
            spark = None
            if args.engine == "spark" and "veclink" in grid.methods:
                from veclink_spark.session import get_or_create_session

                spark = get_or_create_session(
                    master=args.master, app_name="veclink-spark benchmark", conf={"spark.ui.enabled": "false"}
                )
            limits: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
            if args.threads is not None:
                import faiss
                from threadpoolctl import threadpool_limits

                faiss.omp_set_num_threads(args.threads)
                limits = threadpool_limits(limits=args.threads)
            with limits:
                run_grid(
                    grid,
                    args.out_dir,
                    args.engine,
                    spark,
                    command=command,
                    code_version=version,
                    keep_going=args.keep_going,
                )
        if args.report:
            from benchmarks.harness.report import write_report

            out = write_report(args.out_dir, args.report, command=command)
            log.info("report %s, figures: %s", out.report, ", ".join(str(p) for p in out.plots) or "none")
    except (ConfigError, InputError) as exc:
        sys.stderr.write(f"benchmark: {' '.join(str(exc).split())}\n")
        return 2
    except VeclinkError as exc:
        sys.stderr.write(f"benchmark: {' '.join(str(exc).split())}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
