"""Exception hierarchy of veclink-spark.

Every error the library raises on purpose derives from :class:`VeclinkError`, so a caller can catch
one type. Messages say what is wrong, where (table, column, config field) and how to fix it.
"""

from __future__ import annotations


class VeclinkError(Exception):
    """Base class of every error raised by veclink-spark on purpose."""


class ConfigError(VeclinkError):
    """The configuration is invalid. ``problems`` lists every problem found, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            msg = f"invalid configuration: {self.problems[0]}"
        else:
            msg = f"invalid configuration ({len(self.problems)} problems): " + "; ".join(self.problems)
        super().__init__(msg)


class InputError(VeclinkError):
    """An input table (left, right, seeds) is missing, has the wrong schema, or holds bad values."""


class StoreError(VeclinkError):
    """Reading or writing the run's Delta tables failed, or the stored run is inconsistent."""
