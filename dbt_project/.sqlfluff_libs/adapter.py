"""`adapter` for sqlfluff's jinja templater (lint only; dbt brings its own): dispatch picks the postgres__ macro, so the
models are linted as the PostgreSQL SQL they compile to. Not part of the package."""

from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context


@pass_context
def dispatch(context: Context, name: str, macro_namespace: str | None = None) -> Any:
    """The macro `postgres__<name>`, as dbt's postgres adapter looks it up (every dispatched macro has one; the
    default__ forms only raise)."""
    macro = context.resolve_or_missing(f"postgres__{name}")
    if callable(macro):
        return macro
    raise LookupError(f"no postgres__{name} macro")
