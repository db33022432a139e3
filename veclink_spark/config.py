"""User-facing configuration: frozen dataclass sections loaded from YAML or a dict.

Every setting a run or a measurement changes is a named field here with a default and a bound; the
method's fixed settings (no measurement varies them) are named constants, each with its reason, in the
module that uses it (:mod:`veclink_spark.engine`, :mod:`veclink_spark.backends.base`,
:mod:`veclink_spark.diagnostics`). ``conf/default.yaml`` lists every field with its default and a
comment; ``tests/test_config.py`` checks the two agree and keeps ``advanced`` small.
Construction validates everything and reports **every** problem at once (:class:`ConfigError`), each
naming its field, the bound and the value given; unknown keys are errors that suggest the nearest
valid key.

How defaults were chosen: see ``docs/method.md`` (measurements on ``../shared/data``).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


def _f(
    default: Any,
    doc: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[Any, ...] | None = None,
    kind: type | None = None,
) -> Any:
    """A config field with its documentation and bounds kept as dataclass metadata."""
    return field(default=default, metadata={"doc": doc, "lo": lo, "hi": hi, "choices": choices, "kind": kind})


@dataclass(frozen=True)
class IOConfig:
    """Column names of the input tables."""

    left_id: str = _f("id", "id column of the left table (long or string)")
    left_vector: str = _f("vector", "vector column of the left table (array<float> or array<double>)")
    right_id: str = _f("id", "id column of the right table")
    right_vector: str = _f("vector", "vector column of the right table")
    seeds_left: str = _f("left_id", "column of the seeds table holding left ids")
    seeds_right: str = _f("right_id", "column of the seeds table holding right ids")


@dataclass(frozen=True)
class VectorsConfig:
    """How both tables' vectors are prepared before any round."""

    centre: bool = _f(
        True,
        "unit length, subtract the table's mean vector, unit length again (VecMap's normalisation), "
        "each table on its own; false: unit length only. Removes the direction every embedding of an "
        "encoder shares, which otherwise dominates the Procrustes fits (docs/method.md)",
        kind=bool,
    )


@dataclass(frozen=True)
class ViewsConfig:
    """How each round of the published loop samples its views (subsets of paired anchors); the view
    sizes and their growth are constants of :mod:`veclink_spark.engine`."""

    base_views: int = _f(48, "m0: views per round at the start", lo=1, hi=100000, kind=int)


@dataclass(frozen=True)
class SignatureConfig:
    """Anchor-distance signatures ("hash") of every vector in a view."""

    centering: str = _f(
        "anchor",
        "before normalising, subtract from each signature coordinate its mean over the view's vectors "
        "('anchor', as published) or each row's own mean ('row'; on the demo, loop alone: F1 0.908 "
        "against 0.914, docs/method.md)",
        choices=("anchor", "row"),
    )


@dataclass(frozen=True)
class BootstrapConfig:
    """The published loop's rounds."""

    max_rounds: int = _f(30, "cap on the published loop's rounds", lo=1, hi=100000, kind=int)


@dataclass(frozen=True)
class RunConfig:
    """What makes a run repeatable."""

    seed: int = _f(
        0,
        "seed of every random draw (views, k-means cells, dropout): a run's links are the same for the "
        "same inputs, configuration and seed",
        lo=0,
        hi=2**31 - 1,
        kind=int,
    )


@dataclass(frozen=True)
class RefineConfig:
    """Optional self-learning Procrustes refinement once the loop has enough anchors; its fixed settings
    (map counts, bag shares, vote floors, settling shares) are constants of :mod:`veclink_spark.engine`."""

    mode: str = _f(
        "procrustes",
        "'none' (the published loop only) or 'procrustes' (bagged self-learning "
        "orthogonal maps with CSLS mutual nearest neighbours)",
        choices=("none", "procrustes"),
    )
    init: str = _f(
        "distribution",
        "the take-off's first dictionary: 'seeds' (the seeds alone: a map of their few directions) or "
        "'distribution' (the seeds plus the CSLS mutual nearest neighbours of each row's similarity "
        "distribution to a sample of its own table: VecMap's unsupervised initialisation; lets "
        "cross-family pairs with out-of-domain seeds take off, docs/method.md)",
        choices=("seeds", "distribution"),
    )
    max_rounds: int = _f(
        150,
        "cap on the take-off's rounds on the fit rows (scale.max_rounds caps them on the full tables; "
        "with the defaults the kept share of takeoff_keep reaches 1 after at most 4 x "
        "keep_max_level_rounds of them)",
        lo=0,
        hi=100000,
        kind=int,
    )
    takeoff_keep: float = _f(
        0.1,
        "stochastic dictionary induction (VecMap): in the first take-off rounds each candidate pair "
        "competes for a best match with this probability (a fixed random share of the CSLS scores is "
        "dropped), doubling up to 1 by VecMap's rule: once the take-off's objective (the rows' mean "
        "CSLS neighbourhood similarity) has not risen by engine.KEEP_MIN_GAIN for keep_patience "
        "rounds, or after keep_max_level_rounds rounds; the take-off cannot settle before it is 1. "
        "1 = off",
        lo=0.01,
        hi=1.0,
    )
    keep_patience: int = _f(
        5,
        "double the take-off's kept share after this many rounds without an objective gain",
        lo=1,
        hi=1000,
        kind=int,
    )
    keep_max_level_rounds: int = _f(
        30,
        "double the take-off's kept share after at most this many rounds at one share",
        lo=1,
        hi=10000,
        kind=int,
    )
    mixture_separation: float = _f(
        2.0,
        "the take-off's last links are cut at the mixture threshold of their CSLS scores (the upper "
        "component of a two-Gaussian mixture) only when the two components' Ashman's D (sqrt(2) "
        "|mu1 - mu2| / sqrt(s1^2 + s2^2)) is at least this: one hump of mostly right links is left whole",
        lo=0.0,
        hi=100.0,
    )
    mixture_posterior: float = _f(
        0.5,
        "a refined link is in the mixture's upper component when that component's posterior at its "
        "score is at least this: higher keeps fewer, surer links (a precision-first run: 0.9 with "
        "polish_after_cut false, docs/method.md 'Precision')",
        lo=0.01,
        hi=0.999,
    )
    polish_rounds: int = _f(
        1,
        "rounds of the 'polish' stage after take-off: engine.POLISH_MAPS maps, each fitted on "
        "engine.BAG_FRACTION of the links, a link needs engine.POLISH_MIN_VOTE_FRACTION of them; after "
        "a mixture cut only with polish_after_cut; 0 = end with the take-off links",
        lo=0,
        hi=1000,
        kind=int,
    )
    polish_after_cut: bool = _f(
        True,
        "after a mixture cut, polish too: the pairs all the bagged maps (fitted on the cut links) agree "
        "on join the cut links (a link is kept when its score is in the upper component or it is stable "
        "under resampling); false ends with the cut links",
        kind=bool,
    )
    union_max_separation: float = _f(
        3.6,
        "the polish after a mixture cut runs only when the cut's separation (Ashman's D) is below this; "
        "a cleaner cut leaves few right links under it, and the run ends with the cut links (measured: "
        "the polish gained on every grid cell with D <= 3.51 and lost 0.024-0.045 F1 on the cells with "
        "D >= 3.73, docs/method.md); a large value (100) polishes after every cut",
        lo=0.0,
        hi=1000.0,
    )


@dataclass(frozen=True)
class ScaleConfig:
    """How much of the tables the method learns on, and how the rest is linked: the fit sample
    (``fit_rows``, ``fit_on``) and the settings the extension phase (:mod:`veclink_spark.extend`) reads
    directly (``block_rows``, ``probes``, ``max_probes``, ``max_rounds``). One section, named for what
    it is about: ``fit_rows`` decides whether an extension runs at all."""

    fit_rows: int = _f(
        8000,
        "rows of each table the method learns on: the rows nearest the seeds (each seed's nearest "
        "fit_rows / seeds rows); tables with more rows are then linked in full by refinement rounds "
        "that keep the learned links (driver memory: fit_rows x dimension floats a side)",
        lo=10,
        hi=10**7,
        kind=int,
    )
    block_rows: int = _f(
        1000,
        "right rows per k-means cell of the full-table search (a row is compared with the rows of its "
        "nearest cells only), so a round's cost grows linearly with the rows",
        lo=10,
        hi=10**7,
        kind=int,
    )
    probes: int = _f(
        3,
        "cells each row of the last full-table round meets at least (its nearest ones; more, up to "
        "scale.max_probes, where that round's measured search recall asks for them; the rounds before "
        "it, which settle the map, search one): with one, a pair whose two rows fall in different "
        "cells is never proposed (on the 117k WordNet pair a third of the true pairs); a block's work "
        "grows with the square of the probes. Across encoder families more are worth their cost: "
        "WordNet MiniLM-L6 / e5 at 76,478 rows a side, F1 0.735 with 3, 0.790 with 5, 0.806 with 8 "
        "(its ceiling 0.802)",
        lo=1,
        hi=64,
        kind=int,
    )
    max_probes: int = _f(
        8,
        "most cells each row of the last full-table round may meet: before that round the share of a "
        "sample's mutual nearest pairs whose two rows share a cell is measured under its map for each "
        "number of probes (as the summary's search_recall), and it searches the fewest probes from "
        "scale.probes up to this one that reach 97 % (this at or below scale.probes: scale.probes, "
        "unmeasured). WordNet MiniLM-L6 / e5 at 76,478 rows a side: 6, F1 0.799 against 0.735 with 3 "
        "(ceiling 0.802); WordNet MiniLM-L6 / L3 at alpha 0.15 keeps 3",
        lo=1,
        hi=64,
        kind=int,
    )
    max_rounds: int = _f(
        4,
        "cap on the full-table rounds that settle the map (each one pass over both tables, each row "
        "searched in its nearest cell), before the last round in scale.probes cells and its "
        "estimated-F1 cut; they start from the fitted links, so a few usually suffice",
        lo=1,
        hi=1000,
        kind=int,
    )
    fit_on: str = _f(
        "auto",
        "where the fit's rounds run (the Spark job; the in-process API refuses executors): 'driver' "
        "(in the driver's process, the fastest), 'executors' (Spark stages, one Delta commit per round: "
        "for a fit sample whose rounds do not fit in the driver's memory; slower), 'auto' (executors "
        "only when the sample has more than 50,000 rows on a side)",
        choices=("auto", "driver", "executors"),
    )


@dataclass(frozen=True)
class LinksConfig:
    """Which links the run keeps, and what it asks its user."""

    min_precision: float = _f(
        0.0,
        "keep the links whose precision_estimate (the estimated precision of all links at least as "
        "confident, docs/method.md 'Estimated precision') is at least this; 0 keeps every link. Seeds "
        "are always kept. Rows linked later with the run's model (jobs/link_new.py) are cut alike",
        lo=0.0,
        hi=1.0,
    )
    final_match: bool = _f(
        True,
        "after the rounds, match the tables once more under one map fitted on the run's links and keep "
        "the pairs up to where the estimated F1 peaks (tables that fit in scale.fit_rows; larger ones "
        "keep their last round's links up to where the estimated F1 peaks; docs/method.md 'Final "
        "matching'); false: the rounds' links as they are, a large run's cut at the mixture threshold",
        kind=bool,
    )
    questions: int = _f(
        15,
        "pairs in the 'questions' table: the pairs whose yes / no answer should help the next run most "
        "(answers come back with --answers)",
        lo=1,
        hi=10000,
        kind=int,
    )
    ask: str = _f(
        "auto",
        "when the run writes the 'questions' table: auto (when it is not sure of its links: a stall, or "
        "an estimated precision under 0.9), always, never",
        choices=("auto", "always", "never"),
    )


@dataclass(frozen=True)
class LinkConfig:
    """The whole configuration. Build with :meth:`from_dict`, :meth:`from_yaml` or ``LinkConfig()``."""

    io: IOConfig = field(default_factory=IOConfig)
    vectors: VectorsConfig = field(default_factory=VectorsConfig)
    run: RunConfig = field(default_factory=RunConfig)
    views: ViewsConfig = field(default_factory=ViewsConfig)
    signatures: SignatureConfig = field(default_factory=SignatureConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    links: LinksConfig = field(default_factory=LinksConfig)

    def takeoff_keep_rounds(self) -> int:
        """Most take-off rounds before the kept share of ``refine.takeoff_keep`` reaches 1 (0 when it is 1):
        doublings x keep_max_level_rounds."""
        rf = self.refine
        if rf.takeoff_keep >= 1.0:
            return 0
        return math.ceil(math.log2(1.0 / rf.takeoff_keep) - 1e-9) * rf.keep_max_level_rounds

    def __post_init__(self) -> None:
        problems = []
        for sec in fields(self):
            problems.extend(_check_section(_where(sec.name), getattr(self, sec.name)))
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LinkConfig:
        """Build from a nested dict: the public sections (:data:`PUBLIC_SECTIONS`) at the top, the
        research sections under ``advanced`` (``{"advanced": {"refine": {...}}}``), as in
        ``conf/default.yaml``. Every problem is reported at once.

        Raises:
            ConfigError: unknown sections or keys (with the nearest valid name), a research section
                outside ``advanced``, wrong types, values out of bounds.

        Example:
            >>> LinkConfig.from_dict({"scale": {"max_rounds": 2}}).scale.max_rounds
            2
        """
        data = data or {}
        if not isinstance(data, dict):
            raise ConfigError([f"the configuration must be a mapping of sections, got {type(data).__name__}"])
        problems: list[str] = []
        given: dict[str, Any] = {}
        for name, value in data.items():
            if name == ADVANCED:
                if value is None:
                    continue
                if not isinstance(value, dict):
                    problems.append(f"section '{ADVANCED}' must be a mapping, got {type(value).__name__}")
                    continue
                for sub, sub_value in value.items():
                    if sub in ADVANCED_SECTIONS:
                        given[sub] = sub_value
                    elif sub in PUBLIC_SECTIONS:
                        problems.append(f"section '{sub}' belongs at the top level, not under '{ADVANCED}'")
                    else:
                        hint = _suggest(str(sub), list(ADVANCED_SECTIONS), ADVANCED)
                        problems.append(f"unknown section '{ADVANCED}.{sub}'{hint}")
            elif name in ADVANCED_SECTIONS:
                problems.append(f"section '{name}' belongs under '{ADVANCED}:' ({ADVANCED}.{name})")
            elif name in PUBLIC_SECTIONS:
                given[name] = value
            else:
                valid = [*PUBLIC_SECTIONS, ADVANCED]
                problems.append(f"unknown section '{name}'{_suggest(str(name), valid)}")
        sections = {f.name: f for f in fields(cls)}
        built: dict[str, Any] = {}
        for name, value in given.items():
            where = _where(name)
            section_cls = sections[name].default_factory  # type: ignore[misc]
            if value is None:
                value = {}
            if not isinstance(value, dict):
                problems.append(f"section '{where}' must be a mapping, got {type(value).__name__}")
                continue
            known = {f.name: f for f in fields(section_cls)}  # type: ignore[arg-type]
            kwargs = {}
            for key, val in value.items():
                if key not in known:
                    problems.append(f"unknown key '{where}.{key}'{_suggest(str(key), list(known), where)}")
                    continue
                kwargs[key] = val
            built[name] = (section_cls, kwargs)
        instances = {}
        for name, (section_cls, kwargs) in built.items():
            default = section_cls()
            type_problems = _check_types(_where(name), section_cls, kwargs)
            problems.extend(type_problems)
            if type_problems:
                # Check the fields that are well typed anyway, so every problem is reported at once.
                bad = {p.split(" ")[0].rsplit(".", 1)[1] for p in type_problems}
                ok = {k: v for k, v in kwargs.items() if k not in bad}
                problems.extend(_check_section(_where(name), replace(default, **ok)))
                continue
            instances[name] = replace(default, **kwargs) if kwargs else default
        if problems:
            # Also report the bound problems of the sections that did build, so all come at once.
            for name, inst in instances.items():
                problems.extend(_check_section(_where(name), inst))
            raise ConfigError(problems)
        return cls(**instances)

    @classmethod
    def from_yaml(cls, path: str | Path) -> LinkConfig:
        """Load a YAML file (``yaml.safe_load``) and build the config from it.

        Raises:
            ConfigError: the file is missing, is not valid YAML, or holds an invalid configuration.
        """
        p = Path(path)
        if not p.is_file():
            raise ConfigError([f"config file {p} does not exist"])
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError([f"config file {p} is not valid YAML: {exc}"]) from exc
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The config as a nested plain dict in the layout :meth:`from_dict` reads (for logs, summaries
        and round tables)."""

        def section(name: str) -> dict[str, Any]:
            inst = getattr(self, name)
            return {f.name: getattr(inst, f.name) for f in fields(inst)}

        out: dict[str, Any] = {name: section(name) for name in PUBLIC_SECTIONS}
        out[ADVANCED] = {name: section(name) for name in ADVANCED_SECTIONS}
        return out


#: Sections a user sets: input columns, the random seed, how the run scales, which links it keeps.
PUBLIC_SECTIONS = ("io", "vectors", "run", "scale", "links")
#: The method's research settings, kept under ``advanced`` in files: the ones the repository's
#: measurements and tests vary; the defaults are measured (docs/method.md). Change them to study the
#: method, not to run it.
ADVANCED = "advanced"
ADVANCED_SECTIONS = ("views", "signatures", "bootstrap", "refine")


def _where(section: str) -> str:
    """A section's name as written in files and messages (research sections under ``advanced``)."""
    return f"{ADVANCED}.{section}" if section in ADVANCED_SECTIONS else section


def _suggest(key: str, valid: list[str], section: str | None = None) -> str:
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if not near:
        return f" (valid: {', '.join(valid)})"
    return f"; did you mean '{section + '.' if section else ''}{near[0]}'?"


def _check_types(section: str, section_cls: type, kwargs: dict[str, Any]) -> list[str]:
    problems = []
    for f in fields(section_cls):
        if f.name not in kwargs:
            continue
        val = kwargs[f.name]
        default = f.default if f.default is not MISSING else None
        where = f"{section}.{f.name}"
        if isinstance(default, bool):
            if not isinstance(val, bool):
                problems.append(f"{where} must be true or false, got {val!r}")
        elif isinstance(default, int):
            if isinstance(val, bool) or not isinstance(val, int):
                problems.append(f"{where} must be an integer, got {val!r}")
        elif isinstance(default, float):
            if isinstance(val, bool) or not isinstance(val, (int, float)):
                problems.append(f"{where} must be a number, got {val!r}")
            else:
                kwargs[f.name] = float(val)
        elif isinstance(default, str) and not isinstance(val, str):
            problems.append(f"{where} must be a string, got {val!r}")
    return problems


def _check_section(section: str, inst: Any) -> list[str]:
    problems = []
    for f in fields(inst):
        val = getattr(inst, f.name)
        meta = f.metadata
        where = f"{section}.{f.name}"
        if meta.get("choices") is not None and val not in meta["choices"]:
            problems.append(f"{where} must be one of {', '.join(map(repr, meta['choices']))}, got {val!r}")
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            if isinstance(val, float) and not math.isfinite(val):
                problems.append(f"{where} must be finite, got {val!r}")
                continue
            if meta.get("lo") is not None and val < meta["lo"]:
                problems.append(f"{where} must be >= {meta['lo']}, got {val!r}")
            if meta.get("hi") is not None and val > meta["hi"]:
                problems.append(f"{where} must be <= {meta['hi']}, got {val!r}")
        if isinstance(val, str) and meta.get("choices") is None and not val:
            problems.append(f"{where} must not be empty")
    return problems


def describe_fields() -> list[tuple[str, Any, str]]:
    """Every field as (path, default, doc), public sections first, for docs and the default YAML file;
    paths as written in files (``io.left_id``, ``advanced.refine.mode``)."""
    classes = {sec.name: sec.default_factory for sec in fields(LinkConfig)}
    out = []
    for name in (*PUBLIC_SECTIONS, *ADVANCED_SECTIONS):
        for f in fields(classes[name]):  # type: ignore[arg-type]
            out.append((f"{_where(name)}.{f.name}", f.default, f.metadata["doc"]))
    return out
