"""Configuration: defaults, YAML round trip, and every problem reported at once with its field."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from veclink_spark.config import PUBLIC_SECTIONS, LinkConfig, describe_fields
from veclink_spark.engine import FIT_BLOCK_ROWS, block_cells
from veclink_spark.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
#: Most ``advanced`` fields (issue 29: a config that says what a user can change).
MAX_ADVANCED_FIELDS = 15


def test_default_yaml_matches_the_dataclasses() -> None:
    assert LinkConfig.from_yaml(ROOT / "conf" / "default.yaml") == LinkConfig()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_default_conf.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_precision_preset_changes_only_the_cut() -> None:
    preset = LinkConfig.from_yaml(ROOT / "conf" / "precision.yaml")
    assert not preset.refine.polish_after_cut and preset.refine.mixture_posterior == 0.9
    default = LinkConfig().to_dict()
    changed = preset.to_dict()
    assert {k for k in default if default[k] != changed[k]} == {"advanced", "links"}
    assert default["links"] | {"final_match": False} == changed["links"]
    assert (
        default["advanced"]["refine"] | {"polish_after_cut": False, "mixture_posterior": 0.9}
        == (changed["advanced"]["refine"])
    )


def test_every_field_is_documented_in_default_yaml() -> None:
    text = (ROOT / "conf" / "default.yaml").read_text()
    for name, _default, doc in describe_fields():
        assert doc, name
        assert f"  {name.rsplit('.', 1)[1]}:" in text, name


def test_public_configuration_is_small() -> None:
    public = [name for name, _default, _doc in describe_fields() if not name.startswith("advanced.")]
    assert len(public) <= 20, public
    assert {name.split(".")[0] for name in public} == set(PUBLIC_SECTIONS)


def test_advanced_configuration_is_small() -> None:
    """Only the research settings the repository's measurements and tests vary are fields; the
    method's fixed settings are named constants in the modules that use them."""
    advanced = [name for name, _default, _doc in describe_fields() if name.startswith("advanced.")]
    assert len(advanced) <= MAX_ADVANCED_FIELDS, advanced


def test_one_name_per_concept() -> None:
    """A field name means one thing wherever it appears: the same name in two sections is the same
    setting for two phases (``max_rounds``: the round cap of the loop, the take-off on the fit rows and
    the full-table rounds), never two different settings."""
    names: dict[str, list[str]] = {}
    for path, _default, _doc in describe_fields():
        *_, section, name = path.split(".")
        names.setdefault(name, []).append(section)
    shared = {name: sorted(sections) for name, sections in names.items() if len(sections) > 1}
    assert shared == {"max_rounds": ["bootstrap", "refine", "scale"]}


def test_all_problems_reported_at_once_with_field_names() -> None:
    with pytest.raises(ConfigError) as err:
        LinkConfig.from_dict(
            {
                "run": {"seed": -1},
                "advanced": {
                    "bootstrap": {"max_rounds": 0, "max_round": 3},
                    "signatures": {"centering": "bogus"},
                    "refin": {},
                    "refine": {"polish_rounds": "many"},
                },
                "scal": {},
                "views": {},
            }
        )
    problems = err.value.problems
    text = " | ".join(problems)
    assert "advanced.bootstrap.max_rounds must be >= 1, got 0" in text
    assert "run.seed must be >= 0, got -1" in text
    assert "did you mean 'advanced.bootstrap.max_rounds'" in text
    assert "advanced.signatures.centering must be one of" in text and "'bogus'" in text
    assert "unknown section 'advanced.refin'; did you mean 'advanced.refine'" in text
    assert "advanced.refine.polish_rounds must be an integer, got 'many'" in text
    assert "unknown section 'scal'; did you mean 'scale'" in text
    assert "section 'views' belongs under 'advanced:'" in text
    assert len(problems) == 8


def test_type_checks() -> None:
    with pytest.raises(ConfigError, match="advanced.refine.polish_after_cut must be true or false"):
        LinkConfig.from_dict({"advanced": {"refine": {"polish_after_cut": "yes"}}})
    with pytest.raises(ConfigError, match="unknown key 'advanced.views.sampling'"):
        LinkConfig.from_dict({"advanced": {"views": {"sampling": "fps"}}})
    with pytest.raises(ConfigError, match="must be a mapping"):
        LinkConfig.from_dict({"advanced": {"views": 3}})
    with pytest.raises(ConfigError, match="section 'scale' belongs at the top level"):
        LinkConfig.from_dict({"advanced": {"scale": {}}})


def test_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        LinkConfig.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("views: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        LinkConfig.from_yaml(bad)


@pytest.mark.parametrize("section", [f.name for f in fields(LinkConfig)])
def test_every_choice_value_is_accepted(section: str) -> None:
    cls = next(f for f in fields(LinkConfig) if f.name == section).default_factory  # type: ignore[misc]
    for f in fields(cls):
        for choice in f.metadata.get("choices") or ():
            layout = {section: {f.name: choice}}
            cfg = LinkConfig.from_dict(layout if section in PUBLIC_SECTIONS else {"advanced": layout})
            assert getattr(getattr(cfg, section), f.name) == choice


def test_to_dict_round_trip() -> None:
    cfg = LinkConfig.from_dict(
        {"run": {"seed": 3}, "advanced": {"bootstrap": {"max_rounds": 7}, "refine": {"mode": "none"}}}
    )
    assert LinkConfig.from_dict(cfg.to_dict()) == cfg


def test_blocked_search_is_exact_for_small_tables_and_bounds_blocks() -> None:
    assert block_cells(7_800, FIT_BLOCK_ROWS) == 1  # benchmark tables: one cell, the exact search
    n = block_cells(1_000_000, FIT_BLOCK_ROWS)
    assert n > 1
    # Each vector is searched in its nearest cell: a block holds about FIT_BLOCK_ROWS right rows.
    assert 1_000_000 / n <= FIT_BLOCK_ROWS
