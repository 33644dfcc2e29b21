"""The dbt project is adapter-neutral: no `target.type` switches, every dispatched macro has a PostgreSQL and a Spark
form (Databricks reaches the Spark one through dispatch), and its default__ form fails naming the adapter, so an
adapter fares was not written for gets a compile error instead of PostgreSQL's SQL."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest
import yaml

from fares.config.warehouse import DBT_PROJECT_DIR

_SWITCH = re.compile(r"\btarget\.(?:type|name)\b")
# the error a default__ form raises may name the adapter in use (raise_unsupported_adapter, macros/dialect.sql)
_ERROR_CALL = re.compile(r"raise_compiler_error\((?:[^()]|\([^()]*\))*\)")
_DISPATCH = re.compile(r"adapter\.dispatch\(\s*['\"](\w+)['\"]")
_DEFINED = re.compile(r"\{%-?\s*macro\s+(\w+)\s*\(")
_FORMS = ("postgres", "spark", "default")
# dbt's own tag, which plain Jinja cannot parse; a materialization is bound to one adapter and dispatches nothing
_MATERIALIZATION = re.compile(r"\{%-?\s*materialization\b.*?\{%-?\s*endmaterialization\s*-?%\}", re.DOTALL)
_UNSUPPORTED = "fares: macro {name} has no form for adapter 'duckdb' (supported: postgres, spark, databricks)"


def _project_files() -> dict[Path, str]:
    """The dbt project's own SQL and YAML (not dbt's target/ or logs/)."""
    return {
        path: path.read_text(encoding="utf-8")
        for pattern in ("*.sql", "*.yml")
        for path in DBT_PROJECT_DIR.rglob(pattern)
        if not {"target", "logs"} & set(path.relative_to(DBT_PROJECT_DIR).parts)
    }


def find_switches(text: str) -> list[str]:
    """The lines of `text` that switch on target.type or target.name, outside a raise_compiler_error message."""
    kept = _ERROR_CALL.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
    return [line.strip() for line in kept.splitlines() if _SWITCH.search(line)]


def find_missing_forms(text: str) -> dict[str, list[str]]:
    """For each macro `text` dispatches, the forms (postgres__, spark__, default__) it does not define."""
    defined = set(_DEFINED.findall(text))
    missing = {
        name: [form for form in _FORMS if f"{form}__{name}" not in defined] for name in set(_DISPATCH.findall(text))
    }
    return {name: forms for name, forms in missing.items() if forms}


def _macro_text() -> str:
    return "\n".join(text for path, text in sorted(_project_files().items()) if path.parent.name == "macros")


class _CompilerError(Exception):
    pass


def _raise_compiler_error(message: str) -> None:
    raise _CompilerError(message)


def default_form_error(text: str, name: str) -> str | None:
    """What `default__<name>` in the macros `text` raises on an adapter fares has no form for (None: it raises
    nothing). Rendered by plain Jinja with dbt's `exceptions`, `target` and `return` stood in for."""
    env = jinja2.Environment(extensions=["jinja2.ext.do"], undefined=jinja2.StrictUndefined)  # noqa: S701 - SQL, not HTML
    env.globals.update(
        target={"type": "duckdb", "name": "dev"},
        exceptions={"raise_compiler_error": _raise_compiler_error},
        **{"return": lambda value: value},
    )
    macro = getattr(env.from_string(_MATERIALIZATION.sub("", text)).module, f"default__{name}")
    try:
        macro(*[None] * len(macro.arguments))
    except _CompilerError as exc:
        return str(exc)
    return None


def test_no_adapter_switches_in_the_project() -> None:
    files = _project_files()
    assert DBT_PROJECT_DIR / "dbt_project.yml" in files  # the check reads the project
    switches = {path.name: found for path, text in files.items() if (found := find_switches(text))}
    assert switches == {}


def test_a_switch_is_found() -> None:
    made_up = """
        +incremental_strategy: "{{ 'insert_overwrite' if target.type == 'spark' else 'append' }}"
        {% if target.name == 'prod' %} select 1 {% endif %}
        {{ exceptions.raise_compiler_error("no form for adapter '" ~ target.type ~ "'") }}
    """
    assert find_switches(made_up) == [
        """+incremental_strategy: "{{ 'insert_overwrite' if target.type == 'spark' else 'append' }}\"""",
        "{% if target.name == 'prod' %} select 1 {% endif %}",
    ]


def test_every_dispatched_macro_has_its_forms() -> None:
    text = _macro_text()
    dispatched = set(_DISPATCH.findall(text))
    # the check sees the dialect, the month bookkeeping, the incremental config and the lake hook
    assert {"sql_type", "raw_month_loads", "fares_month_strategy", "fares_register_lake"} <= dispatched
    assert find_missing_forms(text) == {}


def test_a_missing_form_is_found() -> None:
    made_up = """
        {% macro x() %}{{ return(adapter.dispatch('x', 'fares')()) }}{% endmacro %}
        {% macro default__x() %}select 1{% endmacro %}
    """
    assert find_missing_forms(made_up) == {"x": ["postgres", "spark"]}


def test_every_default_form_fails_naming_the_adapter() -> None:
    text = _macro_text()
    names = sorted(set(_DISPATCH.findall(text)))
    assert len(names) > 20
    errors = {name: default_form_error(text, name) for name in names}
    assert errors == {name: _UNSUPPORTED.format(name=name) for name in names}


def test_the_project_materialization_is_read_past() -> None:
    # the stored trips' own materialization (macros/month_partitions.sql) is in the text the check renders
    assert "{% materialization month_partitions, adapter='postgres' %}" in _macro_text()
    made_up = """
        {% materialization m, adapter='postgres' %}{{ return({'relations': []}) }}{% endmaterialization %}
        {% macro default__x() %}{{ exceptions.raise_compiler_error('no x') }}{% endmacro %}
    """
    assert default_form_error(made_up, "x") == "no x"


def test_a_default_form_that_renders_sql_is_found() -> None:
    made_up = "{% macro default__x(a) %}{{ a }}::text{% endmacro %}"
    assert default_form_error(made_up, "x") is None


def test_the_lake_hook_runs_first_and_its_var_is_documented() -> None:
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    assert project["on-run-start"][0] == "{{ fares_register_lake() }}"
    assert project["vars"]["lake_ddl"] == []


@pytest.mark.parametrize(
    ("seed", "text_columns"),
    [("taxi_rate_card", ["charge", "source"]), ("hvfhv_charges", ["charge", "unit", "source"])],
)
def test_seed_columns_without_a_type_are_inferred_as_text(seed: str, text_columns: list[str]) -> None:
    """A seed column column_types does not name gets the type dbt infers: each adapter's text type only while every
    value reads as text (a column of numbers or dates would silently become one)."""
    from dbt_common.clients.agate_helper import from_csv

    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    typed = project["seeds"]["fares"][seed]["+column_types"]
    # as dbt reads a seed: the columns column_types names are read as text and cast by the database
    table = from_csv(str(DBT_PROJECT_DIR / "seeds" / f"{seed}.csv"), text_columns=list(typed))
    inferred = {name: type(kind).__name__ for name, kind in zip(table.column_names, table.column_types, strict=True)}
    assert {name: kind for name, kind in inferred.items() if name not in typed} == dict.fromkeys(text_columns, "Text")


def _quoted_seed_cells(folder: Path) -> list[str]:
    """Seed cells holding a single quote, as 'file:line'."""
    return [
        f"{path.name}:{n}"
        for path in sorted(folder.glob("*.csv"))
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if "'" in line
    ]


def test_no_seed_holds_a_single_quote() -> None:
    """dbt-spark's session connection (FARES_DBT_SPARK_TARGET=spark) puts a seed's values into its insert statement
    unescaped: a cell with an apostrophe failed `dbt seed` there with PARSE_SYNTAX_ERROR (seen with charge_zones)."""
    assert _quoted_seed_cells(DBT_PROJECT_DIR / "seeds") == []


def test_a_quoted_seed_cell_is_found(tmp_path: Path) -> None:
    (tmp_path / "zones.csv").write_text("zone_id,note\n1,the park's streets\n")
    assert _quoted_seed_cells(tmp_path) == ["zones.csv:2"]
