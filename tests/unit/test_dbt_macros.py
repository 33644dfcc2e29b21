"""The dbt project overrides none of dbt's own macros: what it changes, it changes in plain sight (its own macros,
called by name where they apply, e.g. the trip-grain tests' `where` config), not by replacing dbt's."""

from __future__ import annotations

import re
from pathlib import Path

from fares.config.warehouse import DBT_PROJECT_DIR

# `{% macro name(`, `{% test name(`, `{% materialization name, ...`
_DEFINED = re.compile(r"\{%-?\s*(?:macro|test|materialization)\s+(\w+)")
_ADAPTERS = ("default", "postgres", "spark", "databricks")
# The exceptions, named: dbt's documented hook for schema names (what a custom `+schema` becomes; the schemas
# staging / intermediate / marts are a contract, ARCHITECTURE.md, and dbt offers no setting for them), and Spark's
# type names in the empty-schema query dbt checks a model contract with (dbt-spark has no implementation of its own).
_DOCUMENTED_HOOKS = {"generate_schema_name", "spark__get_empty_schema_sql"}


def _defined(folder: Path) -> dict[str, Path]:
    return {name: path for path in folder.rglob("*.sql") for name in _DEFINED.findall(path.read_text())}


def _builtin_macros() -> set[str]:
    """Every macro, test and materialization dbt and its adapters (PostgreSQL, Spark when installed) define."""
    import importlib

    names: set[str] = set()
    for module in ("dbt.include.global_project", "dbt.include.postgres", "dbt.include.spark"):
        try:
            package = importlib.import_module(module)
        except ImportError:
            continue
        for folder in package.__path__:
            names |= set(_defined(Path(folder)))
    # a generic test `x` is the macro `test_x`
    return names | {f"test_{n}" for n in names}


def test_the_builtin_list_is_read() -> None:
    builtins = _builtin_macros()
    # what the check below must see to mean anything: the macro the month scoping used to override, and a test
    assert {"get_where_subquery", "default__get_where_subquery", "test_unique", "generate_schema_name"} <= builtins


def _overrides(names: list[str], builtins: set[str]) -> set[str]:
    """The names that replace a dbt macro: the same name, or an adapter's implementation (`spark__x`) of dbt's `x`."""
    found = set()
    for name in names:
        prefix, _, base = name.partition("__")
        if name in builtins or (prefix in _ADAPTERS and base in builtins):
            found.add(name)
    return found


def test_no_dbt_builtin_macro_is_overridden() -> None:
    ours = _defined(DBT_PROJECT_DIR / "macros")
    assert "plan_trip_months" in ours  # the project's own macros are found
    assert _overrides(list(ours), _builtin_macros()) - _DOCUMENTED_HOOKS == set()


def test_an_override_is_recognised() -> None:
    builtins = _builtin_macros()
    assert _overrides(["get_where_subquery", "postgres__get_where_subquery", "test_unique"], builtins) == {
        "get_where_subquery",
        "postgres__get_where_subquery",
        "test_unique",
    }
    assert _overrides(["plan_trip_months", "spark__cast_as"], builtins) == set()
