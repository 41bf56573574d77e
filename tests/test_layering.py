"""The import graph of ``src/authload`` keeps its layers: no module imports itself through
others, the analysis, the mock and the load generator never reach up into what drives a run
(the runner, the CLI, the capacity search), and only the load generator imports Locust
(importing it patches the process with gevent).

Every import statement counts, read with :mod:`ast` (nothing is imported): at module level,
inside functions (a deferred import still ties two modules together) and under
``TYPE_CHECKING`` (a type-only import is one edit away from a run-time one). The rules name
packages by prefix, so they keep holding when a module becomes a package of the same name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"

#: What drives a run: the package ``authload.run``, the CLI and the capacity search.
#: ``authload.analysis.capacity*`` is analysis, not the driver.
DRIVERS = ("authload.run", "authload.cli", "authload.capacity")
#: Libraries the drivers use, which must not use them back.
LIBRARIES = ("authload.analysis", "authload.mock", "authload.load")

#: Import edges left out of the cycle check: cycles that exist today, each with why. Remove an
#: entry when its cycle is gone (test_known_exceptions_are_still_needed says when).
KNOWN_CYCLE_EDGES: Mapping[tuple[str, str], str] = {
    # load.runtime -> load.arrivals -> load.live_counts -> load.runtime. The last edge is
    # type-only (under TYPE_CHECKING): live_counts names the Runtime it reads, and stays free
    # of Locust and gevent at run time, as the master's run state needs.
    ("authload.load.live_counts", "authload.load.runtime"): "type-only Runtime annotation",
}

#: Modules outside ``authload.load`` allowed to import Locust, each with why.
LOCUST_OUTSIDE_LOAD: Mapping[str, str] = {
    # The plain `locust -f locustfiles/scenario.py` entry: it runs inside the Locust process,
    # which has already imported Locust, and hooks Locust's init event to set the stop timeout.
    "authload.run.plain_locust": "configures a plain `locust -f` run from inside Locust",
}


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    package: bool  # an __init__.py: relative imports start from the module itself


def _modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for path in sorted((SRC / "authload").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if package else parts)
        found[name] = Module(name, path, package)
    return found


MODULES = _modules()


def imported_names(source: str, name: str, package: bool) -> set[str]:
    """Every absolute dotted name an import statement of module ``name`` loads: for ``from a
    import b``, ``a.b`` when it is a module, else ``a`` (as ``from a.b import c`` counts
    ``a.b``, not the packages above it)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, package, node.level, node.module)
            for alias in node.names:
                dotted = f"{base}.{alias.name}"
                names.add(dotted if dotted in MODULES else base)
    return names


def _absolute(name: str, package: bool, level: int, module: str | None) -> str:
    """The absolute name a (possibly relative) ``from`` import starts from."""
    if level == 0:
        return module or ""
    parts = name.split(".") if package else name.split(".")[:-1]
    anchor = parts[: len(parts) - level + 1]
    return ".".join([*anchor, module] if module else anchor)


def _module_of(name: str) -> str | None:
    """The authload module a dotted name loads (the longest known prefix), None if outside."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


IMPORTS = {
    m.name: imported_names(m.path.read_text(encoding="utf-8"), m.name, m.package)
    for m in MODULES.values()
}
#: What each module imports: authload modules by name, anything else as written.
TARGETS = {name: {_module_of(n) or n for n in names} for name, names in IMPORTS.items()}
GRAPH = {
    name: {t for t in targets if t in MODULES and t != name} for name, targets in TARGETS.items()
}


def _under(name: str, prefixes: Iterable[str]) -> bool:
    """Whether ``name`` is one of ``prefixes`` or inside one (``authload.run`` is not
    ``authload.runner``'s prefix)."""
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def _components(graph: Mapping[str, set[str]]) -> Iterator[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> Iterator[list[str]]:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                yield from visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(component) > 1:
                yield sorted(component)

    for node in sorted(graph):
        if node not in index:
            yield from visit(node)


def _cycle(graph: Mapping[str, set[str]], component: list[str]) -> list[str]:
    """One shortest cycle through the component's first module, as the chain of its modules."""
    start, inside = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for nxt in sorted(graph[node] & inside):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                frontier.append(nxt)
    raise AssertionError(f"no cycle in {component}")


def _without_known(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    return {a: {b for b in deps if (a, b) not in KNOWN_CYCLE_EDGES} for a, deps in graph.items()}


def test_no_import_cycle() -> None:
    graph = _without_known(GRAPH)
    cycles = [" -> ".join(_cycle(graph, c)) for c in _components(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_known_exceptions_are_still_needed() -> None:
    """An allowance outlives its reason silently unless something checks it."""
    in_cycles = {frozenset(c) for c in _components(GRAPH)}
    for (a, b), why in KNOWN_CYCLE_EDGES.items():
        assert b in GRAPH[a], f"{a} no longer imports {b} ({why}): drop the exception"
        assert any({a, b} <= c for c in in_cycles), f"{a} -> {b} closes no cycle: drop it"
    for name, why in LOCUST_OUTSIDE_LOAD.items():
        assert any(_under(n, ["locust"]) for n in TARGETS[name]), f"{name} ({why}): drop it"


def test_libraries_never_import_what_drives_a_run() -> None:
    found = [
        f"{name} imports {imported}"
        for name, names in sorted(TARGETS.items())
        if _under(name, LIBRARIES)
        for imported in sorted(names)
        if _under(imported, DRIVERS)
    ]
    assert not found, "\n".join(found)


def test_only_the_load_generator_imports_locust() -> None:
    found = [
        name
        for name, names in sorted(TARGETS.items())
        if not _under(name, ["authload.load"]) and name not in LOCUST_OUTSIDE_LOAD
        if any(_under(imported, ["locust"]) for imported in names)
    ]
    assert not found, f"Locust imported outside authload.load by {', '.join(found)}"


def test_imports_are_read_in_every_form() -> None:
    """Relative imports, ``from authload import x``, imports inside functions and under
    TYPE_CHECKING all name the module they load."""
    source = """
from typing import TYPE_CHECKING
from . import summary
from ..cli import main
from .. import run
from authload import capacity
if TYPE_CHECKING:
    from authload.mock.store import Store
def later():
    import locust.env
"""
    names = imported_names(source, "authload.analysis.drift", package=False)
    assert {
        "authload.analysis.summary",  # a module: the module
        "authload.cli",  # a name in a package: the package
        "authload.run",
        "authload.capacity",
        "authload.mock.store",
        "locust.env",
    } <= names
    assert "authload.analysis.sibling" in imported_names(
        "from .sibling import x", "authload.analysis", package=True
    )
    assert _module_of("authload.mock.store.Store") == "authload.mock.store"
    assert _module_of("locust.env") is None
