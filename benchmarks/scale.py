"""Scale benchmark: wall time, peak memory, rows per second and P/R/F1 against table size, for the Spark
job (``jobs/link.py``, local[*]) and the in-process engine (``link_arrays``), on synthetic pairs with the
structure of real encoders (768-d left, 384-d right; :func:`veclink_spark.synthetic.write_scale_pair`).

    python benchmarks/scale.py --rows 10000 100000 [--engines spark inprocess] [--cache DIR]
        [--layout files|single-file]

Data is generated once per size into ``--cache`` (default ``~/.cache/veclink-spark/scale``, outside the
repository), as a folder of Parquet parts per side; ``--layout single-file`` gives the job one Parquet
file per side in a single row group instead (pyarrow's default, :func:`_single_file`). Each run is a
subprocess; its process tree (driver Python, JVM, Python workers) is sampled
every 0.5 s from /proc, and two peaks are kept: the largest sum of resident set sizes (RSS, which counts
a page that forked workers share once per process) and the largest sum of proportional set sizes (PSS,
each shared page split between the processes that map it: the memory the run really holds), each with
its split into JVM, workers and driver. Results are
appended to ``benchmarks/scale/results.jsonl``; the report (``benchmarks/scale/REPORT.md``) and the
log-log plot of time against rows with the fitted exponent per engine are rewritten from all results.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "scale"
sys.path.insert(0, str(ROOT))  # the harness (benchmarks.harness) is imported from the checkout

from benchmarks.grid import code_version  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd


def _kind(pid: int) -> str:
    """Which part of a run a process is: the JVM, a Spark Python worker (or its daemon), or the driver."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return "driver"
    if argv and argv[0].endswith(b"java"):
        return "jvm"
    return "workers" if any(b"pyspark.daemon" in a or b"pyspark.worker" in a for a in argv) else "driver"


def _pss(pid: int) -> int:
    """Proportional set size of one process: its resident pages, each shared page divided by the number
    of processes mapping it (from /proc/PID/smaps_rollup), so forked Python workers that share their
    parent's pages are not counted once per process as in the resident set. Read from /proc directly,
    as the resident sets are: psutil, which wraps the same files, is not a dependency of the project."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[tuple[int, int]]:
    """(pid, resident bytes) of a process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append((p, rss.get(p, 0)))
        stack.extend(children.get(p, []))
    return out


class _Peaks:
    """Peak memory of a process tree, two ways: the sum of resident set sizes (RSS; counts a page shared
    by forked workers once per process, so it overstates) and the sum of proportional set sizes (PSS;
    each shared page split between its processes, so the tree's sum is the memory it really holds).
    Each peak keeps its split by part (JVM, Python workers, driver) at the moment it was reached."""

    def __init__(self) -> None:
        self.rss, self.pss = 0, 0
        self.rss_parts: dict[str, int] = {}
        self.pss_parts: dict[str, int] = {}

    def sample(self, root: int) -> None:
        rss_parts: dict[str, int] = {}
        pss_parts: dict[str, int] = {}
        for pid, rss in _tree(root):
            kind = _kind(pid)
            rss_parts[kind] = rss_parts.get(kind, 0) + rss
            pss_parts[kind] = pss_parts.get(kind, 0) + _pss(pid)
        if sum(rss_parts.values()) > self.rss:
            self.rss, self.rss_parts = sum(rss_parts.values()), rss_parts
        if sum(pss_parts.values()) > self.pss:
            self.pss, self.pss_parts = sum(pss_parts.values()), pss_parts

    def record(self) -> dict:
        gib = lambda b: round(b / 2**30, 2)  # noqa: E731
        return {
            "peak_gib": gib(self.rss),
            "peak_pss_gib": gib(self.pss),
            "peak_rss_parts_gib": {k: gib(v) for k, v in sorted(self.rss_parts.items())},
            "peak_pss_parts_gib": {k: gib(v) for k, v in sorted(self.pss_parts.items())},
        }


def _run(cmd: list[str], log_path: Path) -> tuple[int, float, _Peaks]:
    """Run ``cmd``; return (exit code, seconds, its process tree's peak memory)."""
    peaks = _Peaks()
    t0 = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

        def sample() -> None:
            while proc.poll() is None:
                peaks.sample(proc.pid)
                time.sleep(0.5)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        code = proc.wait()
        th.join()
    return code, time.time() - t0, peaks


def _data(cache: Path, rows: int, seed: int) -> Path:
    folder = cache / f"synthetic-{rows}-seed{seed}"
    if not (folder / "seeds.parquet").exists():
        from veclink_spark.synthetic import write_scale_pair

        t0 = time.time()
        info = write_scale_pair(str(folder), rows, seed=seed)
        print(f"generated {folder.name}: {info} in {time.time() - t0:.0f} s", flush=True)
    return folder


def _single_file(folder: Path) -> Path:
    """The pair of ``folder`` in the single-file layout (``single/left.parquet``, ``single/right.parquet``,
    seeds and truth beside): each side one Parquet file written by ``pyarrow.parquet.write_table`` with
    its defaults, as a user exporting a table from pyarrow or pandas gets it, so one row group for up to
    1,048,576 rows (3 GB at a million 768-d rows). Parquet readers cannot split a row group: the job
    must cut such a table into partitions itself. Written once beside the multi-file layout."""
    import shutil

    import pyarrow.parquet as pq

    single = folder / "single"
    if not (single / "seeds.parquet").exists():
        single.mkdir(exist_ok=True)
        for side in ("left", "right"):
            t0 = time.time()
            table = pq.read_table(folder / side)  # the whole side in memory, as the user's export had it
            pq.write_table(table, single / f"{side}.parquet")
            groups = pq.ParquetFile(single / f"{side}.parquet").metadata.num_row_groups
            print(
                f"wrote {single.name}/{side}.parquet: {table.num_rows:,} rows, {groups} row group(s) "
                f"in {time.time() - t0:.0f} s",
                flush=True,
            )
            del table
        for name in ("truth.parquet", "seeds.parquet"):  # seeds last: their presence marks a finished copy
            shutil.copy(folder / name, single / name)
    return single


def _inprocess(folder: Path, out: Path, config: str | None) -> None:
    """Child process of an in-process run: link, then write the links as parquet."""
    import logging

    import numpy as np
    import pyarrow.parquet as pq

    from veclink_spark import LinkConfig, link_arrays

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    left = pq.read_table(_side(folder, "left")).to_pandas()
    right = pq.read_table(_side(folder, "right")).to_pandas()
    seeds = pq.read_table(folder / "seeds.parquet").to_pandas()
    cfg = LinkConfig.from_yaml(config) if config else LinkConfig()
    links, summary = link_arrays(
        left["id"].to_numpy(),
        np.stack(left["vector"].to_numpy()),
        right["id"].to_numpy(),
        np.stack(right["vector"].to_numpy()),
        seeds["left_id"].to_numpy(),
        seeds["right_id"].to_numpy(),
        cfg,
    )
    out.mkdir(parents=True, exist_ok=True)
    links.to_parquet(out / "links.parquet")
    (out / "summary.json").write_text(
        json.dumps({k: summary.get(k) for k in ("rounds", "verdict", "estimated_precision")})
    )


def _tables(folder: Path, links_path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A run's links and its folder's truth and seeds, read once for its scores and
    :func:`_estimate`."""
    import pandas as pd

    paths = (links_path, folder / "truth.parquet", folder / "seeds.parquet")
    links, truth, seeds = (pd.read_parquet(p) for p in paths)
    return links, truth, seeds


#: The ``--min-precision`` cuts whose kept links a run's record scores (issue 28's targets).
CUTS = (0.9, 0.95)


def _estimate(links: pd.DataFrame, truth: pd.DataFrame, seeds: pd.DataFrame, summary: dict) -> dict:
    """The run's ``estimated_precision`` beside what it measures: the links kept at each of
    :data:`CUTS` (their ``precision_estimate`` at least the cut), counted and scored against the
    truth. Empty for a run whose links carry no estimate."""
    from veclink_spark.evaluate import score_links

    if "precision_estimate" not in links.columns:
        return {}
    rec: dict = {"estimated_precision": summary.get("estimated_precision")}
    for cut in CUTS:
        kept = links[links["precision_estimate"].fillna(-1.0) >= cut]
        got = score_links(kept, truth, seeds)
        rec[f"kept_at_{cut}"] = {"links": got["n_links"], "precision": got["precision"]}
    return rec


def _side(folder: Path, side: str) -> Path:
    """A side's table in a benchmark folder: ``left.parquet`` (single-file layout) or ``left/`` (parts)."""
    single = folder / f"{side}.parquet"
    return single if single.exists() else folder / side


def _spark_command(folder: Path, out: Path) -> list[str]:
    """The Spark job on a benchmark folder, run id ``scale``."""
    return [
        *(sys.executable, "jobs/link.py", "--left", str(_side(folder, "left"))),
        *("--right", str(_side(folder, "right"))),
        *("--seeds", str(folder / "seeds.parquet"), "--output", str(out), "--run-id", "scale"),
    ]


def _dump_links(out: Path, dest: Path) -> None:
    """A Spark run's links (Delta) as parquet at ``dest``, read in a child process with its own session,
    so that both engines' links are scored by the same function."""
    subprocess.run(
        [sys.executable, "-c", _DUMP, str(out), dest.as_posix()], cwd=ROOT, check=True, capture_output=True
    )


def run_one(
    folder: Path, rows: int, engine: str, work: Path, config: str | None, layout: str = "files"
) -> dict:
    name = f"{engine}-{rows}" + ("" if layout == "files" else f"-{layout}")
    if layout == "single-file":
        folder = _single_file(folder)
    out = work / name
    subprocess.run(["rm", "-rf", str(out)], check=True)
    log = work / f"{name}.log"
    if engine == "spark":
        cmd = _spark_command(folder, out)
    else:
        cmd = [sys.executable, "benchmarks/scale.py", "--_inprocess", str(folder), str(out)]
    if config:
        cmd += ["--config", config]
    code, seconds, peaks = _run(cmd, log)
    rec = {"rows": rows, "engine": engine, "exit": code, "seconds": round(seconds, 1), **peaks.record()}
    if layout != "files":
        rec["layout"] = layout
    rec["code"] = code_version()  # the commit measured
    if code == 0:
        if engine == "spark":
            _dump_links(out, out / "links.parquet")
        from veclink_spark.evaluate import score_links

        links, truth, seeds = _tables(folder, out / "links.parquet")
        rec.update(score_links(links, truth, seeds))
        summary = json.loads((out / "summary.json").read_text())
        rec["rounds"] = summary["rounds"]
        rec["verdict"] = summary["verdict"]
        rec.update(_estimate(links, truth, seeds, summary))
        # the last full-table round's search recall (veclink_spark.search_recall), when it had one
        rec["search_recall"] = summary.get("search_recall")
        if "phases" in summary:  # the Spark job's summary (veclink_spark.timing)
            rec["phases"] = summary["phases"]
            rec["full_table_rounds"] = [
                {k: h.get(k) for k in ("round", "views_branch", "links", "seconds", "commit_seconds")}
                for h in summary["history"]
                if h.get("phase") == "extend"
            ]
        left = _side(folder, "left")  # parquet parts, for the record only
        rec["parts"] = len(list(left.glob("*.parquet"))) if left.is_dir() else 1
    rec["rows_per_second"] = round(2 * rows / seconds, 1)
    return rec


def resume_check(folder: Path, rows: int, work: Path, layout: str = "files") -> dict:
    """Kill the Spark job (SIGKILL to its whole process tree) right after its first full-table round is
    committed, resume it with the same run id, and compare its links with an undisturbed run's (the
    benchmark's own run at ROWS in the multi-file layout). With ``layout`` single-file both the killed
    and the resumed job read the single-file copy (:func:`_single_file`): identical links then also
    say that the layout changes nothing."""
    import signal

    import pandas as pd

    if layout == "single-file":
        folder = _single_file(folder)
    name = f"resume-{rows}" + ("" if layout == "files" else f"-{layout}")
    out = work / name
    subprocess.run(["rm", "-rf", str(out)], check=True)
    cmd = _spark_command(folder, out)
    log_path = work / f"{name}.log"
    t0 = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        commits = 0
        while proc.poll() is None:
            time.sleep(1)
            commits = log_path.read_text().count("committed run scale round")
            if commits >= 2:  # the fit, then the first full-table round
                os.killpg(proc.pid, signal.SIGKILL)
                break
        proc.wait()
    killed_after = time.time() - t0
    code, seconds, peaks = _run(cmd, work / f"{name}-resumed.log")
    rec = {
        "rows": rows,
        "layout": layout,
        "killed_after_commits": commits,
        "killed_after_s": round(killed_after, 1),
    }
    rec.update({"resume_exit": code, "resume_seconds": round(seconds, 1), **peaks.record()})
    if code == 0:
        rec["resume_phases"] = json.loads((out / "summary.json").read_text()).get("phases")
        dump = work / f"{name}-links.parquet"
        ref = work / f"spark-{rows}" / "links.parquet"  # written by the benchmark's own run at ROWS
        _dump_links(out, dump)
        a, b = pd.read_parquet(dump), pd.read_parquet(ref)
        pa_, pb = set(zip(a.left_id, a.right_id, strict=True)), set(zip(b.left_id, b.right_id, strict=True))
        rec.update({"links_resumed": len(pa_), "links_undisturbed": len(pb), "identical": pa_ == pb})
    return rec


# Reads a run's links with Spark (Delta) and writes them as parquet (a child process: its own session).
_DUMP = (
    "import sys; from veclink_spark.session import get_or_create_session; "
    "from veclink_spark.store import RunStore; s = get_or_create_session(); "
    "RunStore(s, sys.argv[1]).read_run('links', 'scale').toPandas().to_parquet(sys.argv[2])"
)


def phase_tables(rows: list[dict]) -> list[str]:
    """Where the time goes: per run with phases (the Spark job's summary), seconds and share per phase,
    then each full-table round's seconds and Delta commit."""
    lines: list[str] = []
    for r in rows:
        if not r.get("phases"):
            continue
        lines += [
            "",
            f"Where the time goes: {r['engine']} at {r['rows']:,} rows, {r['seconds']:,} s in all "
            f"(code {r['code']}; the job's `summary.phases`; the first pass over the tables, which "
            "caches them, falls in `sample`; the rest of the wall time is the session's start and stop):",
            "",
            "| phase | seconds | share |",
            "|---|---|---|",
        ]
        lines += [f"| {p['phase']} | {p['seconds']:,.1f} | {p['share']:.1%} |" for p in r["phases"]]
        rounds = r.get("full_table_rounds") or []
        if rounds:
            lines += ["", "| full-table round | stage | links | seconds | Delta commit s |"]
            lines.append("|---|---|---|---|---|")
            for h in rounds:
                commit = h.get("commit_seconds")
                lines.append(
                    f"| {h['round']} | {h['views_branch']} | {h['links']:,} | {h['seconds']:,.1f} | "
                    f"{'-' if commit is None else f'{commit:.1f}'} |"
                )
    return lines


def report(results: list[dict]) -> None:
    """Rewrite REPORT.md and the plot from every result (the latest per (engine, rows))."""
    latest: dict[tuple, dict] = {}
    for r in results:
        # A layout other than the parts is its own series ("spark, single-file").
        r = {**r, "engine": r["engine"] + (f", {r['layout']}" if r.get("layout") else "")}
        latest[(r["engine"], r["rows"])] = r
    rows = sorted(latest.values(), key=lambda r: (r["engine"], r["rows"]))
    lines = [
        "# Scale benchmark",
        "",
        "Command: `python benchmarks/scale.py --rows ...` (see the script's doc). Synthetic pairs of about",
        "`rows` rows a side (768-d left, 384-d right, alpha 0.3 of the objects shared, 15 seeds), default",
        "configuration, 2-core machine; times are wall time of the whole job. Memory: the peak over the",
        "job's process tree of the summed resident sets (RSS, counts pages shared by forked Python workers",
        "once per process) and of the summed proportional sets (PSS, each shared page split between its",
        "processes; '-' where a run predates this measure). Rows per second counts both tables.",
        "Inputs are folders of Parquet parts (about 65,000 rows each), except for 'single-file' rows",
        "(`--layout single-file`): one Parquet file a side in one row group, as pyarrow writes by default.",
        "",
        "| engine | rows a side | exit | seconds | rows/s | peak RSS GiB | peak PSS GiB | rounds | precision "
        "| recall | F1 | verdict | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        done = r["exit"] == 0  # a failed run has no rate and no scores
        rate = f"{r['rows_per_second']:,}" if done else "-"
        p, rec, f1 = (f"{r[k]:.3f}" if done and k in r else "-" for k in ("precision", "recall", "f1"))
        lines.append(
            f"| {r['engine']} | {r['rows']:,} | {r['exit']} | {r['seconds']:,} | {rate} | "
            f"{r['peak_gib']} | {r.get('peak_pss_gib', '-')} | {r.get('rounds', '-')} | {p} | {rec} | {f1} | "
            f"{r.get('verdict', '-')} | {r.get('code') or '-'} |"
        )
    lines.append("")
    exps = {}
    for engine in sorted({r["engine"] for r in rows}):
        pts = [(r["rows"], r["seconds"]) for r in rows if r["engine"] == engine and r["exit"] == 0]
        if len(pts) >= 2:
            import numpy as np

            x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
            exps[engine] = float(np.polyfit(x, y, 1)[0])
            big = sorted(pts)[-2:]
            local = math.log(big[1][1] / big[0][1]) / math.log(big[1][0] / big[0][0])
            lines.append(
                f"- {engine}: time exponent {exps[engine]:.2f} (least squares over {len(pts)} sizes), "
                f"{local:.2f} between {big[0][0]:,} and {big[1][0]:,} rows"
            )
            codes = sorted({str(r.get("code")) for r in rows if r["engine"] == engine and r["exit"] == 0})
            if len(codes) > 1:
                lines.append(
                    f"  (sizes measured on different code: {', '.join(codes)}; not one design's exponent)"
                )
    both = {r["rows"] for r in rows if r["engine"] == "spark" and r["exit"] == 0} & {
        r["rows"] for r in rows if r["engine"] == "inprocess" and r["exit"] == 0
    }
    for n in sorted(both):
        s = latest[("spark", n)]["seconds"] / latest[("inprocess", n)]["seconds"]
        lines.append(f"- Spark job / in-process time at {n:,} rows: {s:.2f}")
    for (engine, n), r in sorted(latest.items()):
        if r["exit"] != 0:
            why = " (SIGKILL: on this machine, the kernel's out-of-memory killer)" if r["exit"] == -9 else ""
            lines.append(
                f"- {engine} at {n:,} rows failed: exit {r['exit']}{why} after {r['seconds']:,} s, "
                f"peak {r['peak_gib']} GiB"
            )
    for (engine, n), r in sorted(latest.items()):
        if "peak_pss_parts_gib" in r:
            parts = ", ".join(f"{k} {v}" for k, v in r["peak_pss_parts_gib"].items())
            rparts = ", ".join(f"{k} {v}" for k, v in r["peak_rss_parts_gib"].items())
            lines.append(f"- {engine} at {n:,} rows, GiB at the PSS peak: {parts}; at the RSS peak: {rparts}")
    resumes = OUT / "resume.jsonl"
    if resumes.exists():
        lines += [
            "",
            "Resume after a killed job (`--resume-check ROWS`: SIGKILL to the job's process tree after",
        ]
        lines += ["its first full-table round was committed, then the same command again):", ""]
        for line in resumes.read_text().splitlines():
            r = json.loads(line)
            layout = "" if r.get("layout", "files") == "files" else f", {r['layout']} layout"
            peak = f", peak {r['peak_gib']} GiB (resumed job)" if "peak_gib" in r else ""
            lines.append(
                f"- {r['rows']:,} rows{layout}: killed after {r['killed_after_commits']} commits "
                f"({r['killed_after_s']} s), "
                f"resumed in {r['resume_seconds']} s, exit {r['resume_exit']}, "
                f"{r.get('links_resumed', '-')} links against {r.get('links_undisturbed', '-')} undisturbed, "
                f"identical: {r.get('identical', '-')}{peak} (code {r.get('commit', '-')})"
            )
    lines += phase_tables(rows)
    lines.append("")
    lines += [
        "![How does the wall time grow with the table size?](scale.png)",
        "",
        "*How does the wall time grow with the table size? The latest run per engine and size (log-log), "
        "each with the default configuration of its commit (the table's `commit` column: sizes measured "
        "on different code, so a line's slope is not one design's exponent); failed runs are not drawn.*",
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    # Hand-written notes on the measurements (a section headed "## Notes") survive the rewrite.
    old = (OUT / "REPORT.md").read_text() if (OUT / "REPORT.md").exists() else ""
    notes = old[old.index("\n## Notes\n") :] if "\n## Notes\n" in old else ""
    (OUT / "REPORT.md").write_text("\n".join(lines) + "\n" + notes)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for engine in sorted({r["engine"] for r in rows}):
        pts = sorted((r["rows"], r["seconds"]) for r in rows if r["engine"] == engine and r["exit"] == 0)
        if pts:
            label = engine + (f" (exponent {exps[engine]:.2f})" if engine in exps else "")
            ax.loglog([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
    ax.set_xlabel("rows a side")
    ax.set_ylabel("wall time (s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "scale.png", dpi=120)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_inprocess":
        config = argv[4] if len(argv) > 4 and argv[3] == "--config" else None
        _inprocess(Path(argv[1]), Path(argv[2]), config)
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--engines", nargs="+", default=["spark", "inprocess"], choices=["spark", "inprocess"])
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "veclink-spark" / "scale"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", default=None)
    p.add_argument("--report-only", action="store_true")
    p.add_argument(
        "--layout",
        choices=["files", "single-file"],
        default="files",
        help="inputs as folders of Parquet parts, or one Parquet file a side in a single row group",
    )
    p.add_argument(
        "--resume-check",
        type=int,
        default=None,
        metavar="ROWS",
        help="kill the Spark job at ROWS after its first full-table round, resume it, compare the links "
        "with the undisturbed run's (run the benchmark at ROWS first)",
    )
    args = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    results_path = OUT / "results.jsonl"
    if args.resume_check:
        cache = Path(args.cache)
        folder = _data(cache, args.resume_check, args.seed)
        rec = resume_check(folder, args.resume_check, cache / "runs", args.layout)
        rec["commit"] = code_version()
        print(json.dumps(rec), flush=True)
        with open(OUT / "resume.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        return 0
    if not args.report_only:
        cache = Path(args.cache)
        work = cache / "runs"
        work.mkdir(parents=True, exist_ok=True)
        for rows in args.rows:
            folder = _data(cache, rows, args.seed)
            for engine in args.engines:
                rec = run_one(folder, rows, engine, work, args.config, args.layout)
                print(json.dumps(rec), flush=True)
                with open(results_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
    results = (
        [json.loads(line) for line in results_path.read_text().splitlines()] if results_path.exists() else []
    )
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
