"""The import graph of ``src/gatehouse``: no cycles, and every layer imports downward only.

Runs in ``make lint`` and in the normal suite. The graph is read with :mod:`ast` (nothing is
imported): every ``import`` statement counts, at module level or inside a function, except
those under ``if TYPE_CHECKING:`` (they never run). An edge goes to the module an import
names (``from gatehouse.domain import audit`` → ``gatehouse.domain.audit``; ``from
gatehouse.domain.signin import SignInError`` → the package ``gatehouse.domain.signin``). The
implicit import of a parent package when a submodule is imported is not an edge: Python
initialises the parent first, so it cannot close a cycle. docs/architecture.md draws the layers.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = SRC / "gatehouse"

#: Each layer and the layers it may import (besides itself), lowest first. A layer is a
#: sub-package or top-level module of ``gatehouse``; ``gatehouse`` is the package's __init__.
LAYERS: dict[str, frozenset[str]] = {
    "gatehouse": frozenset(),
    "metrics": frozenset(),
    "settings": frozenset(),
    # the protocol core knows no Gatehouse: callable from a test with no app, database or settings
    "oidc": frozenset(),
    # the SDK tools embed: the protocol core and nothing of the server
    "client": frozenset({"gatehouse", "oidc"}),
    "integrations": frozenset({"gatehouse", "client", "oidc"}),
    "store": frozenset({"gatehouse", "settings"}),
    # pure logic: no HTTP framework, no runtime, no sync, no CLI
    "domain": frozenset({"gatehouse", "metrics", "settings", "oidc", "store"}),
    # console <-> environment protocol: domain services, never the web layer
    "sync": frozenset({"gatehouse", "metrics", "settings", "store", "domain"}),
    # the composition root: builds every service
    "runtime": frozenset({"gatehouse", "settings", "store", "domain"}),
    "lifecycle": frozenset({"runtime", "domain", "sync"}),
    "web": frozenset(
        {"gatehouse", "metrics", "settings", "oidc", "store", "domain", "sync", "runtime"}
        | {"lifecycle"}
    ),
    "cli": frozenset(
        {"gatehouse", "metrics", "settings", "oidc", "client", "store", "domain", "runtime"}
        | {"web"}
    ),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for p in sorted(ROOT.rglob("*.py"))
        if "migrations" not in p.relative_to(ROOT).parts
    }


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def _resolve(name: str) -> str | None:
    """The module ``name`` denotes, or its closest enclosing module (``pkg.Class`` → ``pkg``)."""
    known = modules()
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if modules()[module].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, *([node.module] if node.module else [])])
        names = [f"{base}.{alias.name}" for alias in node.names] or [base]
    for name in names:
        if name == "gatehouse" or name.startswith("gatehouse."):
            target = _resolve(name)
            if target is not None and target != module:
                yield target


@cache
def import_graph() -> dict[str, frozenset[str]]:
    graph: dict[str, frozenset[str]] = {}
    for module, path in modules().items():
        tree = ast.parse(path.read_text(), str(path))
        skipped = _type_checking_nodes(tree)
        graph[module] = frozenset(
            target
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skipped
            for target in _imported(module, node)
        )
    return graph


def _cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph.get(step, ())))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "gatehouse"


def test_the_graph_is_read() -> None:
    """The walk sees the modules and the edges it must see (a broken walk would pass all)."""
    graph = import_graph()
    assert len(graph) > 100
    assert "gatehouse.domain.signin.common" in graph["gatehouse.domain.signin.callback"]
    assert "gatehouse.oidc._jws" in graph["gatehouse.oidc.id_token"]  # relative import
    assert "gatehouse.runtime" in graph["gatehouse.cli.admin"]  # function-level import
    assert "gatehouse.web.principal" not in graph["gatehouse.web.csrf"]  # TYPE_CHECKING only
    assert _cycles({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"})}) == [
        ["a", "b", "c"]
    ]


def test_no_import_cycles() -> None:
    assert _cycles(import_graph()) == []


def test_every_layer_is_placed() -> None:
    assert {layer_of(m) for m in modules()} <= set(LAYERS)


def test_layers_import_downward_only() -> None:
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if layer_of(target) != layer_of(module) and layer_of(target) not in LAYERS[layer_of(module)]
    )
    assert wrong == []


_STATE_WRITE = re.compile(r"\bapp\.state\.(\w+)\s*=[^=]")
_STATE_LOOKUP = re.compile(r"getattr\([\w.]*app\.state\b")


def test_nothing_but_the_runtime_is_installed_on_the_app() -> None:
    """Services are built by the runtime and reached as ``rt.<name>``: no hooks on app.state
    that a request would look up and find missing."""
    writes: list[str] = []
    lookups: list[str] = []
    for module, path in modules().items():
        text = path.read_text()
        writes += [f"{module}: app.state.{m}" for m in _STATE_WRITE.findall(text) if m != "runtime"]
        lookups += [f"{module}: {m.group(0)}" for m in _STATE_LOOKUP.finditer(text)]
    assert writes == [] and lookups == []


def test_no_import_hides_from_the_graph() -> None:
    """``importlib.import_module`` / ``__import__`` would make edges this check cannot see."""
    dynamic = sorted(
        module
        for module, path in modules().items()
        if re.search(r"\bimport_module\(|\b__import__\(", path.read_text())
    )
    assert dynamic == []
