"""The engines: the one place that knows PostgreSQL from Spark. `get_engine(settings)` is where the choice is made.

Each engine (`postgres`, `spark`) is a module with one `Engine` subclass (`fares.engines.base`); it owns where a raw
month is stored and swapped, how dbt runs and with which target, counts and catalog lookups, the Great Expectations
data source, and reading a training sample or a lookup table. Nothing outside this package reads `settings.engine`.
"""

from __future__ import annotations

from fares.config.settings import Settings
from fares.engines.base import Engine

ENGINES = ("postgres", "spark")


def get_engine(settings: Settings) -> Engine:
    """The engine `settings.engine` names (its module is imported on first use, so PostgreSQL never loads Spark's)."""
    if settings.engine == "spark":
        from fares.engines.spark import SparkEngine

        return SparkEngine(settings)
    if settings.engine == "postgres":
        from fares.engines.postgres import PostgresEngine

        return PostgresEngine(settings)
    raise ValueError(f"unknown engine {settings.engine!r}; the engines are {', '.join(ENGINES)}")
