"""In-process runs on synthetic pairs, shortened for tests (tests/test_reference.py,
tests/test_precision.py, tests/test_questions.py)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from veclink_spark import LinkConfig, link_arrays
from veclink_spark.synthetic import SyntheticPair

# The adaptive kept-share schedule, shortened: a share lasts one round without an objective gain, two at most.
FAST: dict[str, Any] = {
    "advanced": {
        "bootstrap": {"max_rounds": 4},
        "refine": {"max_rounds": 10, "keep_patience": 1, "keep_max_level_rounds": 2},
    }
}


def link_pair(
    pair: SyntheticPair, conf: dict[str, Any], answers: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``link_arrays`` on a synthetic pair with its own seeds."""
    return link_arrays(
        pair.left_ids,
        pair.left,
        pair.right_ids,
        pair.right,
        pair.seed_left,
        pair.seed_right,
        LinkConfig.from_dict(conf),
        answers=answers,
    )
