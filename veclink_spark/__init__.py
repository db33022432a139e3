"""veclink-spark: record linkage for vectors, on Spark.

Two embedding tables made by different encoders over partly overlapping objects, plus a handful of
known pairs: find which vectors are the same object. Public surface: :class:`LinkConfig`,
:class:`Linker`, :func:`link`, :class:`LinkResult`, and :func:`link_arrays` (the in-process API).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import LinkConfig
from .errors import ConfigError, InputError, StoreError, VeclinkError

__version__ = "0.1.0"
__all__ = [
    "LinkConfig",
    "Linker",
    "LinkResult",
    "link",
    "link_arrays",
    "VeclinkError",
    "ConfigError",
    "InputError",
    "StoreError",
    "__version__",
]

if TYPE_CHECKING:
    from .arrays import link_arrays
    from .linker import Linker, LinkResult, link


def __getattr__(name: str) -> Any:
    # Spark is imported only when the Spark linker is used, so the in-process API works without pyspark.
    if name in ("Linker", "link", "LinkResult"):
        from . import linker

        return getattr(linker, name)
    if name == "link_arrays":
        from .arrays import link_arrays

        return link_arrays
    raise AttributeError(f"module 'veclink_spark' has no attribute {name!r}")
