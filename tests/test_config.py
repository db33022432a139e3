"""Configuration: defaults, YAML round trip, and every problem reported at once with its field."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from veclink_spark.config import PUBLIC_SECTIONS, LinkConfig, describe_fields
from veclink_spark.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


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


def test_all_problems_reported_at_once_with_field_names() -> None:
    with pytest.raises(ConfigError) as err:
        LinkConfig.from_dict(
            {
                "run": {"seed": -1},
                "advanced": {
                    "bootstrap": {"max_rounds": 0, "max_round": 3},
                    "views": {"sampling": "bogus"},
                    "hashng": {},
                    "refine": {"views": "many"},
                },
                "scal": {},
                "evidence": {},
            }
        )
    problems = err.value.problems
    text = " | ".join(problems)
    assert "advanced.bootstrap.max_rounds must be >= 1, got 0" in text
    assert "run.seed must be >= 0, got -1" in text
    assert "did you mean 'advanced.bootstrap.max_rounds'" in text
    assert "advanced.views.sampling must be one of" in text and "'bogus'" in text
    assert "unknown section 'advanced.hashng'; did you mean 'advanced.hashing'" in text
    assert "advanced.refine.views must be an integer, got 'many'" in text
    assert "unknown section 'scal'; did you mean 'scale'" in text
    assert "section 'evidence' belongs under 'advanced:'" in text
    assert len(problems) == 8


def test_cross_field_and_type_checks() -> None:
    with pytest.raises(ConfigError, match="advanced.views.min_view_size"):
        LinkConfig.from_dict({"advanced": {"views": {"min_view_size": 10, "max_view_size": 5}}})
    with pytest.raises(ConfigError, match="advanced.views.kmeans must be true or false"):
        LinkConfig.from_dict({"advanced": {"views": {"kmeans": "yes"}}})
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


def test_refine_cells_auto_is_exact_for_small_tables_and_bounds_blocks() -> None:
    cfg = LinkConfig()
    assert cfg.refine.cells == 0
    assert cfg.refine_cells(7_800) == 1  # benchmark tables: one cell, the exact search
    n = cfg.refine_cells(1_000_000)
    assert n > 1
    # Each vector is searched in its nearest cell: a block holds about block_rows right rows.
    assert 1_000_000 / n <= cfg.refine.block_rows
    assert LinkConfig.from_dict({"advanced": {"refine": {"cells": 16}}}).refine_cells(1_000_000) == 16
