"""`adapter` for sqlfluff's jinja templater (lint only; dbt brings its own): dispatch picks the default__ macro, so the
models are linted as the PostgreSQL SQL they compile to. Not part of the package."""

from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context


@pass_context
def dispatch(context: Context, name: str, macro_namespace: str | None = None) -> Any:
    """The macro `default__<name>` (postgres__ first, as dbt's postgres adapter looks it up)."""
    for prefix in ("postgres__", "default__"):
        macro = context.resolve_or_missing(prefix + name)
        if callable(macro):
            return macro
    raise LookupError(f"no default__{name} macro")
