"""The import picture of the house: packages import only inward, nothing imports the composition root.

`reports → integrations → orders → catalog → tenants → saas`: a package imports only packages to its
right. `quanyi` (the composition root) imports them all and nothing imports it: the worker and the CLI are
handed the app. These tests read every module with `ast`, so a new upward arrow or a new circle fails here
naming the file and the line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSITION_ROOT = "quanyi"
# Innermost first: each package may import those before it in this tuple, never those after.
LAYERS = ("saas", "tenants", "catalog", "orders", "integrations", "reports")


@dataclass(frozen=True)
class Import:
    """One import statement of one module of the app."""

    module: str
    target: str
    line: int
    in_function: bool

    @property
    def where(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports_of(module: str, tree: ast.AST, in_function: bool = False) -> list[Import]:
    found: list[Import] = []
    for node in ast.iter_child_nodes(tree):
        if _is_type_checking_block(node):
            continue  # never runs: annotations only
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno, inside) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [
                Import(module, f"{node.module}.{alias.name}", node.lineno, inside) for alias in node.names
            ]
        found += _imports_of(module, node, inside)
    return found


def app_modules() -> dict[str, Path]:
    """Return every module of the app by dotted name (migrations excluded: Alembic runs them)."""
    return {
        _module_name(path): path
        for package in (COMPOSITION_ROOT, *LAYERS)
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


def app_imports() -> list[Import]:
    """Return every import between the app's own packages."""
    own = (COMPOSITION_ROOT, *LAYERS)
    found: list[Import] = []
    for module, path in app_modules().items():
        found += _imports_of(module, ast.parse(path.read_text(encoding="utf-8")))
    return [i for i in found if i.target.split(".")[0] in own]


def _package(name: str) -> str:
    return name.split(".")[0]


def test_nothing_imports_the_composition_root() -> None:
    offenders = [
        i.where
        for i in app_imports()
        if _package(i.target) == COMPOSITION_ROOT and _package(i.module) != COMPOSITION_ROOT
    ]
    assert offenders == []


def test_every_package_imports_only_packages_to_its_right() -> None:
    upward = [
        i.where
        for i in app_imports()
        if _package(i.module) in LAYERS
        and _package(i.target) in LAYERS
        and LAYERS.index(_package(i.target)) > LAYERS.index(_package(i.module))
    ]
    assert upward == []


def test_the_package_import_graph_has_no_circle() -> None:
    edges: dict[str, set[str]] = {}
    for i in app_imports():
        if _package(i.module) != _package(i.target):
            edges.setdefault(_package(i.module), set()).add(_package(i.target))
    assert _circles(edges) == []


def test_no_module_imports_itself_back_through_others_at_import_time() -> None:
    """A circle of module-level imports works only by the order modules happen to load; there is none."""
    edges: dict[str, set[str]] = {}
    modules = set(app_modules())
    for i in app_imports():
        if i.in_function:
            continue
        target = i.target if i.target in modules else i.target.rpartition(".")[0]
        if target != i.module:
            edges.setdefault(i.module, set()).add(target)
    assert _circles(edges) == []


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return circles


def test_signals_are_sent_one_way_through_saas_events() -> None:
    """Only `saas.events` touches blinker; every other package publishes and subscribes through it."""
    offenders = []
    for module, path in app_modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(name.split(".")[0] == "blinker" for name in names) and module != "saas.events":
                offenders.append(f"{module}:{node.lineno}")
    assert offenders == []
