"""The extension phase in process: its committed state, its fixed pairs, and its resumption."""

from __future__ import annotations

import json

import numpy as np
import pytest

from veclink_spark import LinkConfig
from veclink_spark.backends.in_process import NumpyBackend
from veclink_spark.pipeline import fit_and_extend
from veclink_spark.state import RunState
from veclink_spark.synthetic import make_pair

try:
    from synthetic_runs import FAST
except ImportError:  # tests/ became a package
    from tests.synthetic_runs import FAST

# fit_rows 300 < 1,000 rows a side: a fit on the rows nearest the seeds, then the extend phase.
CONFIG = {**FAST, "scale": {"fit_rows": 300, "block_rows": 200, "max_rounds": 3}}


@pytest.fixture(scope="module")
def pair():
    return make_pair(n_objects=1000, seed=5)


def _backend(pair, cfg: LinkConfig) -> NumpyBackend:
    return NumpyBackend(pair.left_ids, pair.left, pair.right_ids, pair.right, cfg)


def test_the_extension_is_its_own_phase_and_resumes_to_the_same_links(pair, monkeypatch) -> None:
    cfg = LinkConfig.from_dict(CONFIG)
    whole = fit_and_extend(_backend(pair, cfg), pair.seed_left, pair.seed_right, cfg)
    assert {h["phase"] for h in whole.state.history} >= {"refine", "extend"}

    backend = _backend(pair, cfg)
    original = NumpyBackend.refine_votes
    extension_rounds: list[int] = []

    def failing(self, round_no, *args, **kwargs):
        if self is backend:  # the full tables' backend: the extension's rounds, not the fit's
            extension_rounds.append(round_no)
            if len(extension_rounds) == 2:
                raise RuntimeError("simulated failure")
        return original(self, round_no, *args, **kwargs)

    monkeypatch.setattr(NumpyBackend, "refine_votes", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        fit_and_extend(backend, pair.seed_left, pair.seed_right, cfg)
    monkeypatch.setattr(NumpyBackend, "refine_votes", original)
    # Committed: the extension's start (after the fit) and its first round, each in the extend phase,
    # the state recording the fit; the fitted links are not flagged as seeds.
    assert [r for r, _, _ in backend.rounds] == [extension_rounds[0] - 1, extension_rounds[0]]
    round_no, anchors, state = backend.load_last_round()
    state = RunState.from_dict(json.loads(json.dumps(state.to_dict())))  # as the Spark job stores it
    assert state.phase == "extend" and state.extension is not None
    assert state.extension.fit_rounds == extension_rounds[0] - 1
    assert int(anchors["is_seed"].sum()) == len(pair.seed_left) - len(state.dropped_seeds)
    fitted = set(zip(state.extension.fitted_left, state.extension.fitted_right, strict=True))
    assert len(fitted) > int(anchors["is_seed"].sum())  # links beyond the seeds were fitted
    assert fitted <= set(zip(anchors["left_id"].tolist(), anchors["right_id"].tolist(), strict=True))

    resumed = fit_and_extend(backend, pair.seed_left, pair.seed_right, cfg)
    for column, values in whole.anchors.items():
        np.testing.assert_array_equal(resumed.anchors[column], values, err_msg=column)
    strip = ("seconds", "commit_seconds")
    assert [{k: v for k, v in h.items() if k not in strip} for h in resumed.state.history] == [
        {k: v for k, v in h.items() if k not in strip} for h in whole.state.history
    ]
