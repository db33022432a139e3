"""Run a benchmark grid (corpora x encoder pairs x alphas x seed counts x seed kinds x split seeds x
methods) by the protocol of ``design/benchmark.md`` and store one JSON line per run.

A grid is a YAML file (``benchmarks/grids/*.yaml``)::

    name: quick
    data_dir: ../shared/data          # <data_dir>/<corpus>/<encoder>.parquet (id, vector)
    corpora: [wordnet, debian]
    encoders: [all-mpnet-base-v2, all-MiniLM-L6-v2, multilingual-e5-small, all-MiniLM-L3-v2-paraphrase]
    pairs: all                        # every pair of `encoders` (left = first), or [[left, right], ...]
    alphas: [0.3]
    n_seeds: [15]
    seed_kinds: [in_domain]           # and/or out_of_domain (seed objects from `ood_source`)
    split_seeds: [0]
    methods: [veclink, procrustes, cca, least_squares, mlp, relative, self_learning]
    veclink_config: null              # a LinkConfig YAML file; null = the defaults
    veclink_overrides: {}             # nested {section: {field: value}} applied on top
    ood_source: {wordnet: debian, debian: wordnet}

Every split cell (corpus, pair, seed kind, alpha, n, split seed) is built once with
:func:`~veclink_spark.splits.make_split` and every method runs on exactly that split:

* ``veclink``: :func:`veclink_spark.link_arrays` (engine ``reference``), or the Spark
  :class:`~veclink_spark.linker.Linker` on the split written with ``write_split`` (engine ``spark``);
* the classical baselines of :data:`~benchmarks.harness.baselines.BASELINES`;
* ``oracle_procrustes`` / ``oracle_procrustes_centred`` / ``oracle_least_squares``: a linear map fitted
  on ALL true pairs, then cosine mutual nearest neighbours (a ceiling, never a competitor; opt-in). The
  centred variant first applies VecMap's normalisation, as veclink's maps see the vectors; the
  least-squares map has far more parameters than there are true pairs at low overlap, so it is fitted
  and scored on the same pairs and overstates what any map learned without labels can reach.

Each finished run appends one JSON object to ``OUT/results.jsonl`` (scores with seeds excluded, links,
rounds, links per round, wall seconds, the machine); runs already present with status ``ok`` are
skipped, so an interrupted grid resumes where it stopped. A run key holds every grid coordinate plus,
for veclink, the engine and a digest of the configuration: changing the config re-runs veclink only.
The resolved veclink configuration is kept in ``OUT/configs/<digest>.json`` and the grid's planned run
keys in ``OUT/plans/<grid name>.json`` (the report uses them to say what is missing).
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from veclink_spark.config import LinkConfig
from veclink_spark.constants import IS_SEED, LEFT_ID, RIGHT_ID, ROUND
from veclink_spark.errors import ConfigError, InputError
from veclink_spark.evaluate import score_by_round, score_links
from veclink_spark.splits import Corpus, Split, load_corpus, make_split, write_split

from .baselines import BASELINES, Links, oracle_links

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

VECLINK = "veclink"
#: The published hash-join loop alone (veclink with ``advanced.refine.mode: none``), its own method so
#: that it gets its own row beside the full method.
VECLINK_LOOP = "veclink_loop"
VECLINK_METHODS: tuple[str, ...] = (VECLINK, VECLINK_LOOP)
ORACLES: dict[str, str] = {
    "oracle_procrustes": "procrustes",
    "oracle_procrustes_centred": "procrustes_centred",
    "oracle_least_squares": "least_squares",
}
METHODS: tuple[str, ...] = (*VECLINK_METHODS, *BASELINES, *ORACLES)
SEED_KINDS: tuple[str, ...] = ("in_domain", "out_of_domain")
ENGINES: tuple[str, ...] = ("reference", "spark")
#: Engine recorded for the baselines and oracles: they always run in this process (numpy / faiss).
IN_PROCESS = "in-process"

RESULTS_FILE = "results.jsonl"
PLANS_DIR = "plans"
CONFIGS_DIR = "configs"
SPLITS_DIR = "splits"
SPARK_RUNS_DIR = "spark-runs"

#: Short encoder labels for logs and tables; unknown encoders keep their full name.
ENCODER_SHORT: dict[str, str] = {
    "all-mpnet-base-v2": "mpnet",
    "all-MiniLM-L6-v2": "L6",
    "multilingual-e5-small": "e5",
    "all-MiniLM-L3-v2-paraphrase": "L3",
    "glove-6b-50d-mean": "glove",
}
#: Default out-of-domain seed source of the two real corpora (the other one).
DEFAULT_OOD_SOURCE: dict[str, str] = {"wordnet": "debian", "debian": "wordnet"}

_GRID_KEYS = (
    "name",
    "data_dir",
    "corpora",
    "encoders",
    "pairs",
    "alphas",
    "n_seeds",
    "seed_kinds",
    "split_seeds",
    "methods",
    "veclink_config",
    "veclink_overrides",
    "ood_source",
)


def short_encoder(name: str) -> str:
    """Short label of an encoder (``all-mpnet-base-v2`` -> ``mpnet``); unknown names are kept."""
    return ENCODER_SHORT.get(name, name)


def pair_label(left: str, right: str) -> str:
    """Label of an encoder pair, e.g. ``mpnet/L6``."""
    return f"{short_encoder(left)}/{short_encoder(right)}"


def method_config(cfg: LinkConfig, method: str) -> LinkConfig:
    """The veclink configuration a method runs with: the grid's, or for :data:`VECLINK_LOOP` the same
    with the refinement off (the published loop alone)."""
    if method != VECLINK_LOOP:
        return cfg
    data = cfg.to_dict()
    data["advanced"]["refine"]["mode"] = "none"
    return LinkConfig.from_dict(data)


def config_overrides(items: list[str]) -> dict[str, Any]:
    """Command-line overrides ``PATH=VALUE`` (``scale.fit_rows=3000``, ``advanced.refine.mode=none``) as
    the nested dict :meth:`LinkConfig.from_dict` takes; each value is read as YAML.

    Raises:
        ValueError: an item that is not ``PATH=VALUE`` with a dotted path.
    """
    conf: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        *parents, name = key.split(".")
        if not (eq and parents and all(parents) and name):
            raise ValueError(
                f"override {item!r} is not PATH=VALUE (as in conf/default.yaml: scale.fit_rows=3000)"
            )
        node = conf
        for part in parents:
            node = node.setdefault(part, {})
        node[name] = yaml.safe_load(value)
    return conf


def config_digest(cfg: LinkConfig) -> str:
    """A short stable digest of a veclink configuration (12 hex digits of SHA-256 of its JSON)."""
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Grid:
    """A validated benchmark grid. Build it with :func:`load_grid` or :func:`grid_from_dict`.

    Attributes:
        name: grid name (the plan file's name; recorded in every result row).
        data_dir: folder holding ``<corpus>/<encoder>.parquet``.
        corpora: corpora to link.
        pairs: (left encoder, right encoder) pairs.
        alphas: shared fractions.
        n_seeds: seed counts.
        seed_kinds: ``in_domain`` and/or ``out_of_domain``.
        split_seeds: random seeds of the splits (one split per seed and cell).
        methods: ``veclink``, baseline names, oracle names.
        veclink_config: the linker's configuration.
        ood_source: corpus -> corpus the out-of-domain seed objects come from.
    """

    name: str
    data_dir: Path
    corpora: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    alphas: tuple[float, ...]
    n_seeds: tuple[int, ...]
    seed_kinds: tuple[str, ...]
    split_seeds: tuple[int, ...]
    methods: tuple[str, ...]
    veclink_config: LinkConfig = field(default_factory=LinkConfig)
    ood_source: dict[str, str] = field(default_factory=dict)

    def restrict(
        self,
        corpora: list[str] | None = None,
        pairs: list[str] | None = None,
        methods: list[str] | None = None,
    ) -> Grid:
        """A copy limited to some corpora, pairs (``left:right`` or short ``mpnet/L6`` labels) or methods.

        Raises:
            ConfigError: a name that is not in the grid (or, for methods, not a known method).
        """
        problems: list[str] = []
        new = self
        if corpora:
            bad = [c for c in corpora if c not in self.corpora]
            problems += [
                f"corpus '{c}' is not in grid '{self.name}' ({', '.join(self.corpora)})" for c in bad
            ]
            new = replace(new, corpora=tuple(c for c in self.corpora if c in corpora))
        if pairs:
            wanted = set()
            for p in pairs:
                match = [pr for pr in self.pairs if p in (f"{pr[0]}:{pr[1]}", pair_label(*pr))]
                if not match:
                    labels = ", ".join(pair_label(*pr) for pr in self.pairs)
                    problems.append(f"pair '{p}' is not in grid '{self.name}' (pairs: {labels})")
                wanted.update(match)
            new = replace(new, pairs=tuple(pr for pr in self.pairs if pr in wanted))
        if methods:
            bad = [m for m in methods if m not in METHODS]
            problems += [f"unknown method '{m}'{_suggest(m, list(METHODS))}" for m in bad]
            new = replace(new, methods=tuple(dict.fromkeys(m for m in methods if m in METHODS)))
        if problems:
            raise ConfigError(problems)
        return new


def _suggest(key: str, valid: list[str]) -> str:
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f"; did you mean '{near[0]}'?" if near else f" (valid: {', '.join(valid)})"


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _list_of(
    data: dict[str, Any], key: str, kind: type, problems: list[str], default: Any = None
) -> list[Any]:
    """``data[key]`` as a non-empty list of ``kind`` (a scalar becomes a one-item list)."""
    value = data.get(key, default)
    if value is None:
        problems.append(f"grid key '{key}' is required")
        return []
    items = value if isinstance(value, list) else [value]
    if not items:
        problems.append(f"grid key '{key}' must not be empty")
    out = []
    for item in items:
        ok = isinstance(item, kind) and not isinstance(item, bool)
        if kind is float and isinstance(item, int) and not isinstance(item, bool):
            ok, item = True, float(item)
        if not ok:
            problems.append(f"grid key '{key}': {item!r} is not a {kind.__name__}")
            continue
        out.append(item)
    if len(set(out)) != len(out):
        problems.append(f"grid key '{key}' lists a value twice: {out}")
    return out


def grid_from_dict(data: Any, source: str = "<dict>", base_dir: Path | None = None) -> Grid:
    """Validate a grid mapping and build the :class:`Grid`; every problem is reported at once.

    Args:
        data: the mapping (see the module doc for its keys).
        source: where it came from (used in messages and as the default grid name).
        base_dir: folder that a relative ``veclink_config`` path is tried against when it does not exist
            relative to the current directory (the grid file's folder).

    Returns:
        The grid.

    Raises:
        ConfigError: unknown keys (with the nearest valid key), wrong types, values out of range, unknown
            methods or seed kinds, pairs naming encoders not listed, an invalid veclink configuration.
    """
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: a grid must be a mapping of keys, got {type(data).__name__}"])
    problems: list[str] = []
    for key in data:
        if key not in _GRID_KEYS:
            problems.append(f"unknown grid key '{key}'{_suggest(str(key), list(_GRID_KEYS))}")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name or "/" in name:
        problems.append(f"grid key 'name' must be a non-empty string without '/', got {name!r}")
    data_dir = data.get("data_dir", "../shared/data")
    if not isinstance(data_dir, str):
        problems.append(f"grid key 'data_dir' must be a path string, got {data_dir!r}")
    corpora = _list_of(data, "corpora", str, problems)
    encoders = _list_of(data, "encoders", str, problems)
    pairs_value = data.get("pairs", "all")
    pairs: list[tuple[str, str]] = []
    if pairs_value == "all":
        if len(encoders) < 2:
            problems.append("grid key 'encoders' must list at least two encoders when pairs is 'all'")
        pairs = list(itertools.combinations(encoders, 2))
    elif isinstance(pairs_value, list) and pairs_value:
        for p in pairs_value:
            if (
                not (isinstance(p, list) and len(p) == 2 and all(isinstance(e, str) for e in p))
                or p[0] == p[1]
            ):
                problems.append(f"grid key 'pairs': {p!r} is not a [left encoder, right encoder] pair")
                continue
            unknown = [e for e in p if e not in encoders]
            if unknown:
                problems.append(f"grid key 'pairs': {p!r} names encoder(s) {unknown} not in 'encoders'")
                continue
            pairs.append((p[0], p[1]))
        if len(set(pairs)) != len(pairs):
            problems.append("grid key 'pairs' lists a pair twice")
    else:
        problems.append(
            f"grid key 'pairs' must be 'all' or a list of [left, right] pairs, got {pairs_value!r}"
        )
    alphas = _list_of(data, "alphas", float, problems)
    problems += [f"grid key 'alphas': {a} is not in (0, 1)" for a in alphas if not 0.0 < a < 1.0]
    n_seeds = _list_of(data, "n_seeds", int, problems)
    problems += [f"grid key 'n_seeds': {n} is below 2 (veclink needs two seeds)" for n in n_seeds if n < 2]
    kinds = _list_of(data, "seed_kinds", str, problems, default=["in_domain"])
    problems += [
        f"grid key 'seed_kinds': unknown kind '{k}'{_suggest(k, list(SEED_KINDS))}"
        for k in kinds
        if k not in SEED_KINDS
    ]
    split_seeds = _list_of(data, "split_seeds", int, problems, default=[0])
    problems += [f"grid key 'split_seeds': {s} is negative" for s in split_seeds if s < 0]
    methods = _list_of(data, "methods", str, problems, default=[VECLINK, *BASELINES])
    problems += [
        f"grid key 'methods': unknown method '{m}'{_suggest(m, list(METHODS))}"
        for m in methods
        if m not in METHODS
    ]

    ood_value = data.get("ood_source") or {}
    ood: dict[str, str] = {}
    if not isinstance(ood_value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in ood_value.items()
    ):
        problems.append(f"grid key 'ood_source' must map corpus names to corpus names, got {ood_value!r}")
    elif "out_of_domain" in kinds:
        for c in corpora:
            others = [o for o in corpora if o != c]
            src = ood_value.get(c) or DEFAULT_OOD_SOURCE.get(c) or (others[0] if others else None)
            if src is None or src == c:
                problems.append(
                    f"out-of-domain seeds for corpus '{c}' need another corpus: set ood_source: "
                    f"{{{c}: OTHER_CORPUS}}"
                )
            else:
                ood[c] = src

    cfg = LinkConfig()
    cfg_path = data.get("veclink_config")
    overrides = data.get("veclink_overrides") or {}
    cfg_data: dict[str, Any] = {}
    if cfg_path is not None:
        if not isinstance(cfg_path, str):
            problems.append(f"grid key 'veclink_config' must be a path string or null, got {cfg_path!r}")
        else:
            p = Path(cfg_path)
            if not p.is_file() and base_dir is not None and (base_dir / p).is_file():
                p = base_dir / p
            if not p.is_file():
                problems.append(f"grid key 'veclink_config': file {cfg_path} not found")
            else:
                try:
                    loaded = yaml.safe_load(p.read_text()) or {}
                except yaml.YAMLError as exc:
                    problems.append(f"grid key 'veclink_config': {p} is not valid YAML: {exc}")
                    loaded = {}
                if not isinstance(loaded, dict):
                    problems.append(f"grid key 'veclink_config': {p} must hold a mapping of sections")
                else:
                    cfg_data = loaded
    if not isinstance(overrides, dict):
        problems.append(f"grid key 'veclink_overrides' must be a mapping of sections, got {overrides!r}")
        overrides = {}
    try:
        cfg = LinkConfig.from_dict(_deep_merge(cfg_data, overrides))
    except ConfigError as exc:
        problems += [f"veclink configuration: {p}" for p in exc.problems]
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    return Grid(
        name=str(name),
        data_dir=Path(str(data_dir)),
        corpora=tuple(corpora),
        pairs=tuple(pairs),
        alphas=tuple(alphas),
        n_seeds=tuple(n_seeds),
        seed_kinds=tuple(kinds),
        split_seeds=tuple(split_seeds),
        methods=tuple(methods),
        veclink_config=cfg,
        ood_source=ood,
    )


def load_grid(path: str | Path) -> Grid:
    """Load and validate a grid YAML file (``yaml.safe_load``).

    Raises:
        ConfigError: the file is missing, is not YAML, or holds an invalid grid (every problem listed).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError([f"grid file {p} does not exist"])
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError([f"grid file {p} is not valid YAML: {exc}"]) from exc
    return grid_from_dict(data, source=str(p), base_dir=p.parent)


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: a split cell and a method."""

    corpus: str
    left: str
    right: str
    alpha: float
    n_seeds: int
    seed_kind: str
    split_seed: int
    method: str
    engine: str
    config_digest: str | None

    @property
    def cell(self) -> tuple[str, str, str, float, int, str, int]:
        """The split this run uses: (corpus, left, right, alpha, n_seeds, seed_kind, split_seed)."""
        return (self.corpus, self.left, self.right, self.alpha, self.n_seeds, self.seed_kind, self.split_seed)

    @property
    def key(self) -> str:
        """Unique run key (all coordinates; engine and config digest for veclink)."""
        parts = [
            f"corpus={self.corpus}",
            f"left={self.left}",
            f"right={self.right}",
            f"alpha={self.alpha:g}",
            f"n={self.n_seeds}",
            f"kind={self.seed_kind}",
            f"seed={self.split_seed}",
            f"method={self.method}",
        ]
        if self.method in VECLINK_METHODS:
            parts += [f"engine={self.engine}", f"config={self.config_digest}"]
        return "|".join(parts)

    @property
    def split_dir(self) -> str:
        """Relative folder of this run's split under ``OUT/splits``."""
        return (
            f"{self.corpus}/{self.left}__{self.right}/"
            f"a{self.alpha:g}-n{self.n_seeds}-{self.seed_kind}-s{self.split_seed}"
        )

    def label(self) -> str:
        """One-line description for logs."""
        return (
            f"{self.corpus} {pair_label(self.left, self.right)} {self.seed_kind} a={self.alpha:g} "
            f"n={self.n_seeds} s={self.split_seed} {self.method}"
        )


def plan_runs(grid: Grid, engine: str = "reference") -> list[RunSpec]:
    """Every run of the grid, in execution order (the methods of one split run one after the other).

    Raises:
        ConfigError: unknown engine.
    """
    if engine not in ENGINES:
        raise ConfigError([f"engine must be one of {', '.join(ENGINES)}, got {engine!r}"])
    digests = {m: config_digest(method_config(grid.veclink_config, m)) for m in VECLINK_METHODS}
    runs = []
    for corpus, (left, right), kind, alpha, n, s in itertools.product(
        grid.corpora, grid.pairs, grid.seed_kinds, grid.alphas, grid.n_seeds, grid.split_seeds
    ):
        for m in grid.methods:
            is_vl = m in VECLINK_METHODS
            runs.append(
                RunSpec(
                    corpus,
                    left,
                    right,
                    alpha,
                    n,
                    kind,
                    s,
                    m,
                    engine if is_vl else IN_PROCESS,
                    digests[m] if is_vl else None,
                )
            )
    return runs


def machine_info() -> dict[str, Any]:
    """What the runs ran on: cores, architecture, OS, Python, memory (GiB, when known)."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "system": platform.platform(terse=True),
        "python": platform.python_version(),
    }
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):  # not every OS exposes these sysconf names
        info["memory_gib"] = None
    return info


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_results(path: str | Path, repair: bool = False) -> list[dict[str, Any]]:
    """Read a ``results.jsonl`` file (missing file: no rows).

    A last line cut short (the process was killed while writing it) is ignored with a warning, and with
    ``repair=True`` removed from the file so later appends start on a clean line.

    Raises:
        InputError: a line other than the last is not valid JSON (the file is damaged).
    """
    p = Path(path)
    if not p.is_file():
        return []
    text = p.read_text()
    lines = text.split("\n")
    rows: list[dict[str, Any]] = []
    offset = 0
    for i, line in enumerate(lines):
        last = i == len(lines) - 1 or (i == len(lines) - 2 and lines[-1] == "")
        if line.strip():
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not an object")
                rows.append(row)
            except ValueError as exc:
                if not last:
                    raise InputError(
                        f"{p}, line {i + 1}: not a JSON object ({exc}); fix or remove that line"
                    ) from exc
                log.warning("%s: ignoring a truncated last line (an interrupted write): %.80s", p, line)
                if repair:
                    with p.open("r+") as fh:
                        fh.truncate(offset)
                break
        offset += len(line.encode()) + 1
    else:
        if repair and text and not text.endswith("\n"):  # a complete last line without its newline
            with p.open("a") as fh:
                fh.write("\n")
    return rows


class _Progress:
    """Counts finished runs and estimates the time left from this invocation's pace."""

    def __init__(self, total: int):
        self.total, self.done, self.start = total, 0, time.perf_counter()

    def tick(self) -> str:
        self.done += 1
        elapsed = time.perf_counter() - self.start
        left = (self.total - self.done) * elapsed / self.done
        return f"[{self.done}/{self.total}] elapsed {_hms(elapsed)}, ETA {_hms(left)}"


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


@dataclass
class _SparkContext:
    spark: SparkSession
    out_dir: Path
    written: set[str] = field(default_factory=set)


def _truth(split: Split) -> dict[str, np.ndarray]:
    return {LEFT_ID: split.truth[:, 0], RIGHT_ID: split.truth[:, 1], IS_SEED: split.truth_is_seed}


def _run_veclink(
    split: Split, run: RunSpec, cfg: LinkConfig, spark_ctx: _SparkContext | None
) -> tuple[pd.DataFrame, dict[str, Any], float]:
    """veclink on one split: (links with a round column, linker summary, wall seconds)."""
    if run.engine == "reference":
        from veclink_spark.arrays import link_arrays

        t0 = time.perf_counter()
        links, summary = link_arrays(
            split.left.ids,
            split.left.vectors,
            split.right.ids,
            split.right.vectors,
            split.seeds[:, 0],
            split.seeds[:, 1],
            cfg,
        )
        return links, summary, time.perf_counter() - t0
    if spark_ctx is None:
        raise ConfigError(["engine 'spark' needs a SparkSession: pass spark= to run_grid"])
    from veclink_spark.linker import Linker
    from veclink_spark.splits import LEFT_FILE, RIGHT_FILE, SEEDS_FILE

    folder = spark_ctx.out_dir / SPLITS_DIR / run.split_dir
    if run.split_dir not in spark_ctx.written:
        write_split(split, folder)  # deterministic, so rewriting an existing one is harmless
        spark_ctx.written.add(run.split_dir)
    output = spark_ctx.out_dir / SPARK_RUNS_DIR / run.split_dir / str(run.config_digest)
    t0 = time.perf_counter()
    result = Linker(cfg, spark_ctx.spark).link(
        str(folder / LEFT_FILE), str(folder / RIGHT_FILE), str(folder / SEEDS_FILE), str(output)
    )
    links = result.links.select(LEFT_ID, RIGHT_ID, ROUND, IS_SEED).toPandas()
    wall = time.perf_counter() - t0
    summary = dict(result.summary)
    summary["spark_output"] = str(output)
    return links, summary, wall


def _run_baseline(split: Split, method: str) -> tuple[Links, float]:
    x, y = split.left.vectors, split.right.vectors
    sl, sr = split.seed_index_pairs()
    t0 = time.perf_counter()
    if method in ORACLES:
        tl, tr = split.truth_index_pairs(include_seeds=True)
        links = oracle_links(ORACLES[method], x, y, tl, tr, sl, sr)
    else:
        links = BASELINES[method](x, y, sl, sr)
    return links, time.perf_counter() - t0


def run_one(
    split: Split, run: RunSpec, cfg: LinkConfig, spark_ctx: _SparkContext | None = None
) -> dict[str, Any]:
    """Run one method on one split and score it (seeds excluded).

    Returns:
        The result fields: precision, recall, f1, n_links, n_correct, n_true, rounds, links_per_round,
        wall_seconds, plus ``by_round`` / ``verdict`` / ``stop_reason`` (veclink) or ``info`` (baselines).
    """
    truth = _truth(split)
    if run.method in VECLINK_METHODS:
        links, summary, wall = _run_veclink(split, run, method_config(cfg, run.method), spark_ctx)
        scores = score_links(links, truth, split.seeds)
        by_round = score_by_round(links, truth, split.seeds) if len(links) else []
        extra: dict[str, Any] = {
            "rounds": int(summary.get("rounds", 0)),
            "links_per_round": [int(v) for v in summary.get("links_per_round", [])],
            "by_round": by_round,
            "verdict": summary.get("verdict"),
            "stop_reason": summary.get("stop_reason"),
            "seed_consistency": summary.get("seed_consistency_spearman"),
        }
        if "spark_output" in summary:
            extra["spark_output"] = summary["spark_output"]
    else:
        blinks, wall = _run_baseline(split, run.method)
        ids = (split.left.ids[blinks.left_index], split.right.ids[blinks.right_index])
        scores = score_links(ids, truth, split.seeds)
        iterations = blinks.info.get("iterations")
        extra = {"rounds": int(iterations) if iterations is not None else 1, "links_per_round": None}
        if blinks.info:
            extra["info"] = blinks.info
    return {**scores, **extra, "wall_seconds": round(wall, 3)}


def _check_files(grid: Grid, runs: list[RunSpec]) -> None:
    """Check every embedding file the runs need exists before anything runs (all missing ones at once)."""
    needed = set()
    for r in runs:
        needed |= {(r.corpus, r.left), (r.corpus, r.right)}
        if r.seed_kind == "out_of_domain":
            needed |= {(grid.ood_source[r.corpus], r.left), (grid.ood_source[r.corpus], r.right)}
    missing = sorted(
        str(grid.data_dir / c / f"{e}.parquet")
        for c, e in needed
        if not (grid.data_dir / c / f"{e}.parquet").is_file()
    )
    if missing:
        raise InputError(
            f"{len(missing)} embedding file(s) missing: {', '.join(missing[:6])}"
            f"{' ...' if len(missing) > 6 else ''}; check data_dir ({grid.data_dir}) and the "
            "grid's corpora / encoders"
        )


def _groups(runs: list[RunSpec]) -> Iterator[tuple[tuple[Any, ...], list[RunSpec]]]:
    for cell, group in itertools.groupby(runs, key=lambda r: r.cell):
        yield cell, list(group)


@dataclass
class GridOutcome:
    """What :func:`run_grid` did: counts and where the results are."""

    results_path: Path
    planned: int
    skipped: int
    finished: int
    failed: int
    seconds: float


def run_grid(
    grid: Grid,
    out_dir: str | Path,
    engine: str = "reference",
    spark: SparkSession | None = None,
    command: str | None = None,
    code_version: str | None = None,
    keep_going: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> GridOutcome:
    """Run every pending run of a grid, appending one JSON line per finished run to ``OUT/results.jsonl``.

    Args:
        grid: the grid (see :func:`load_grid`).
        out_dir: output folder (created); holds results.jsonl, plans/, configs/, and for the Spark engine
            splits/ and spark-runs/.
        engine: ``reference`` (in-process :func:`veclink_spark.link_arrays`) or ``spark``
            (:class:`veclink_spark.linker.Linker` on ``spark``) for the veclink runs.
        spark: the session for the ``spark`` engine.
        command: the command line, recorded in every row (for the report).
        code_version: what code ran (e.g. the git commit), recorded in every row. Not part of the run
            key: after changing the method's code, use a new ``out_dir`` (or the old rows are kept).
        keep_going: record a failed run (status ``error``, re-tried on the next invocation) and go on,
            instead of stopping at the first failure.
        on_result: called with each row after it is written (for tests and progress hooks).

    Returns:
        A :class:`GridOutcome`.

    Raises:
        ConfigError: unknown engine, or the spark engine without a session.
        InputError: embedding files missing, a damaged results file, or a split that cannot be built.
        Any error of a method, unless ``keep_going``.
    """
    out = Path(out_dir)
    runs = plan_runs(grid, engine)
    if engine == "spark" and spark is None and any(r.method in VECLINK_METHODS for r in runs):
        raise ConfigError(["engine 'spark' needs a SparkSession: pass spark= to run_grid"])
    results_path = out / RESULTS_FILE
    done = {r["key"] for r in read_results(results_path, repair=True) if r.get("status") == "ok"}
    pending = [r for r in runs if r.key not in done]
    _check_files(grid, pending)  # fail before writing anything
    out.mkdir(parents=True, exist_ok=True)
    digest = config_digest(grid.veclink_config)
    (out / PLANS_DIR).mkdir(exist_ok=True)
    (out / PLANS_DIR / f"{grid.name}.json").write_text(
        json.dumps(
            {
                "grid": grid.name,
                "engine": engine,
                "config_digest": digest,
                "keys": [r.key for r in runs],
            },
            indent=1,
        )
    )
    # The configuration of each veclink method the grid runs, by its digest (what plan_runs keys on).
    vl_configs = {
        m: (config_digest(c), c)
        for m in VECLINK_METHODS
        if m in grid.methods
        for c in [method_config(grid.veclink_config, m)]
    }
    for dg, cfg_m in vl_configs.values():
        (out / CONFIGS_DIR).mkdir(exist_ok=True)
        (out / CONFIGS_DIR / f"{dg}.json").write_text(json.dumps(cfg_m.to_dict(), indent=1))
    configs = ", ".join(f"{m} {dg}" for m, (dg, _) in vl_configs.items())
    log.info(
        "grid %s: %d runs planned, %d already in %s, %d to run (engine %s; config of %s)",
        grid.name,
        len(runs),
        len(runs) - len(pending),
        results_path,
        len(pending),
        engine,
        configs or "no veclink run",
    )
    t_start = time.perf_counter()
    outcome = GridOutcome(results_path, len(runs), len(runs) - len(pending), 0, 0, 0.0)
    if not pending:
        return outcome
    host = machine_info()
    spark_ctx = _SparkContext(spark, out) if spark is not None else None
    progress = _Progress(len(pending))
    corpora: dict[tuple[str, str], Corpus] = {}

    def corpus(c: str, e: str) -> Corpus:
        if (c, e) not in corpora:
            corpora[(c, e)] = load_corpus(grid.data_dir, c, e)
        return corpora[(c, e)]

    for (c, left, right, alpha, n, kind, seed), group in _groups(pending):
        ood = None
        if kind == "out_of_domain":
            src = grid.ood_source[c]
            ood = (corpus(src, left), corpus(src, right))
        split = make_split(corpus(c, left), corpus(c, right), alpha, n, seed, ood_seed_vectors=ood)
        for run in group:
            base = {
                "key": run.key,
                "grid": grid.name,
                "corpus": c,
                "left": left,
                "right": right,
                "pair": pair_label(left, right),
                "alpha": alpha,
                "n_seeds": n,
                "seed_kind": kind,
                "split_seed": seed,
                "method": run.method,
                "engine": run.engine,
                "config_digest": run.config_digest,
                "ood_source": grid.ood_source.get(c) if kind == "out_of_domain" else None,
                "n_left": len(split.left),
                "n_right": len(split.right),
                "n_shared": split.n_shared,
            }
            try:
                res = run_one(split, run, grid.veclink_config, spark_ctx)
                row = {**base, "status": "ok", **res}
            except Exception as exc:
                if not keep_going:
                    raise
                log.exception(
                    "run %s failed; recorded as an error, it will be re-tried next time", run.label()
                )
                row = {**base, "status": "error", "error": f"{type(exc).__name__}: {exc}"}
            row |= {
                "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "host": host,
                "command": command,
                "code_version": code_version,
            }
            with results_path.open("a") as fh:
                fh.write(json.dumps(row, default=_json_default) + "\n")
            if row["status"] == "ok":
                outcome.finished += 1
                extra = f" verdict={row['verdict']}" if run.method in VECLINK_METHODS else ""
                log.info(
                    "%s %s: P=%.1f R=%.1f F1=%.1f links=%d rounds=%s wall=%.1fs%s",
                    progress.tick(),
                    run.label(),
                    100 * row["precision"],
                    100 * row["recall"],
                    100 * row["f1"],
                    row["n_links"],
                    row["rounds"],
                    row["wall_seconds"],
                    extra,
                )
            else:
                outcome.failed += 1
                log.info("%s %s: FAILED (%s)", progress.tick(), run.label(), row["error"])
            if on_result is not None:
                on_result(row)
    outcome.seconds = round(time.perf_counter() - t_start, 1)
    log.info(
        "grid %s: %d runs finished, %d failed, %d skipped (already done), in %s",
        grid.name,
        outcome.finished,
        outcome.failed,
        outcome.skipped,
        _hms(outcome.seconds),
    )
    return outcome
