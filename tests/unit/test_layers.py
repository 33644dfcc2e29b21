"""The house's seams, checked on the source: no import cycle, imports only downwards in ARCHITECTURE.md's layer order,
the engine choice in one package, SQL on schema ops in one package, migrations only at process entries."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_SKIP = {"tests", "bench", "build", "dbt_project", "api/static"}


def _modules() -> dict[str, Path]:
    """Every module of the package `fares` (this checkout), by its import name."""
    found = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0].startswith(".") or rel.parts[0] in _SKIP:
            continue
        name = ".".join(("fares", *rel.with_suffix("").parts)).removesuffix(".__init__")
        found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """The fares modules `path` imports anywhere in it (top level, in functions, under TYPE_CHECKING)."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [s for s in subs if s in MODULES] or [node.module]
        for imported in names:
            name = imported
            while name.startswith("fares") and name not in MODULES:
                name = name.rpartition(".")[0]
            if name.startswith("fares"):
                targets.add(name)
    return targets


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _layer_order() -> list[set[str]]:
    """The layers, lowest first, from ARCHITECTURE.md's line `Layers, lowest first: a < b < c, d < ...`."""
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    found = re.search(r"^Layers, lowest first: `(.+)`$", text, re.M)
    assert found, "ARCHITECTURE.md must state the layer order"
    return [{part.strip() for part in step.split(",")} for step in found.group(1).split("<")]


def _layer_of(module: str, layers: list[set[str]]) -> int | None:
    top = module.split(".")[1] if module.count(".") else ""
    for rank, names in enumerate(layers):
        if top in names:
            return rank
    return None


def test_the_module_list_is_the_package() -> None:
    assert {"fares.ops.runs", "fares.engines.base", "fares.chain.pipeline", "fares.scheduler"} <= set(MODULES)
    assert len(MODULES) > 60


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of `graph` (Tarjan's strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, set()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return cycles


def _upward(graph: dict[str, set[str]], layers: list[set[str]]) -> list[str]:
    """Imports from a lower layer into a higher one."""
    return [
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if a != "fares" and b != "fares" and (_layer_of(b, layers) or 0) > (_layer_of(a, layers) or 0)
    ]


def test_no_import_cycle() -> None:
    assert _cycles(GRAPH) == []


def test_imports_follow_the_layer_order() -> None:
    layers = _layer_order()
    unplaced = {m for m in MODULES if m != "fares" and _layer_of(m, layers) is None}
    assert unplaced == set(), "every subpackage and root module has a layer in ARCHITECTURE.md"
    assert _upward(GRAPH, layers) == []


def test_a_cycle_and_an_upward_import_are_caught() -> None:
    """The two checks can fail: a cycle through a function-level import and an ops module importing the CLI."""
    fake = {"fares.ops.runs": {"fares.cli.main"}, "fares.cli.main": {"fares.ops.runs"}}
    assert _cycles(fake) == [["fares.cli.main", "fares.ops.runs"]]
    assert _upward(fake, _layer_order()) == ["fares.ops.runs -> fares.cli.main"]


def _source(module: str) -> str:
    return MODULES[module].read_text(encoding="utf-8")


def test_only_the_engines_know_which_engine() -> None:
    readers = [
        m
        for m in MODULES
        if not m.startswith("fares.engines")
        and m != "fares.config.settings"
        and (re.search(r"settings\.engine\b", _source(m)) or re.search(r"""==\s*["']spark["']""", _source(m)))
    ]
    assert readers == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.startswith("fares.ops")))
def test_sql_on_schema_ops_lives_in_the_ops_package(module: str) -> None:
    sql = re.findall(r"""(?:from|into|update|join|table)\s+ops\.\w+""", _source(module), re.I)
    assert sql == []


def test_migrations_run_only_at_process_entries() -> None:
    callers = sorted(m for m in MODULES if re.search(r"\bmigrate\(", _source(m)) and m != "fares.ops.schema")
    # the API's database handle (its first use of the database) is the API process's entry
    assert callers == ["fares.api.database"]
    entries = [m for m in MODULES if "prepare_warehouse(" in _source(m) and m != "fares.ops.schema"]
    assert sorted(entries) == ["fares.cli.commands", "fares.scheduler"]
