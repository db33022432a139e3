"""Where a run's time goes: wall seconds per named phase, logged as each ends and kept in the summary.

A run's phases, in order (:class:`veclink_spark.linker.Linker`): ``inputs`` (read and validate),
``centre``, ``sample`` (the fit's rows; the first pass over the tables, which caches them, falls here),
``fit`` (the rounds on the sample, in the driver's process or on executors: ``scale.fit_on``),
``seed_check`` (and the second fit when seeds are dropped), ``full_table_rounds`` (the extension's
rounds; each round's own seconds and its Delta commit are in the summary's ``history``), ``assess``
(estimated precision, final matching, questions), ``model`` and ``write`` (the run's Delta tables and
the saved model). A resumed run counts only what it ran again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class Phases:
    """Wall seconds per phase, in the order the phases first ran (a phase run twice adds up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            took = time.perf_counter() - t0
            self.seconds[name] = self.seconds.get(name, 0.0) + took
            log.info("phase %s: %.1f s", name, took)

    def table(self) -> list[dict[str, float | str]]:
        """The summary's ``phases``: each phase's seconds and share of their sum."""
        total = sum(self.seconds.values()) or 1.0
        return [
            {"phase": name, "seconds": round(s, 2), "share": round(s / total, 4)}
            for name, s in self.seconds.items()
        ]
