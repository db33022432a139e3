"""Where the fit's rounds run (``scale.fit_on``): the auto rule, and the in-process API's refusal of
executors. That both places give the same links is tested end to end in tests/test_link_spark.py."""

from __future__ import annotations

from dataclasses import fields

import pytest

from veclink_spark import LinkConfig, link_arrays
from veclink_spark.backends.spark import DRIVER_FIT_ROWS, fit_on_executors
from veclink_spark.config import ScaleConfig
from veclink_spark.errors import ConfigError
from veclink_spark.synthetic import make_pair


def test_auto_fits_on_the_driver_up_to_the_budget() -> None:
    assert not fit_on_executors("auto", DRIVER_FIT_ROWS, DRIVER_FIT_ROWS)
    assert fit_on_executors("auto", 10, DRIVER_FIT_ROWS + 1)
    assert fit_on_executors("executors", 10, 10)
    assert not fit_on_executors("driver", 10 * DRIVER_FIT_ROWS, 10 * DRIVER_FIT_ROWS)
    # The field's help (and conf/default.yaml) states the budget.
    help_text = next(f for f in fields(ScaleConfig) if f.name == "fit_on").metadata["doc"]
    assert f"{DRIVER_FIT_ROWS:,}" in help_text


def test_the_in_process_api_refuses_executors() -> None:
    pair = make_pair(n_objects=60, alpha=0.5, n_seeds=5, seed=0)
    cfg = LinkConfig.from_dict({"scale": {"fit_on": "executors"}})
    with pytest.raises(ConfigError, match="fit_on: executors"):
        link_arrays(
            pair.left_ids, pair.left, pair.right_ids, pair.right, pair.seed_left, pair.seed_right, cfg
        )
