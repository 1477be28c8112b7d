"""pyproject.toml matches the code: every package src/gatehouse imports is declared (in the
base install or a runtime extra), and every declared package is imported or has a reason."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "gatehouse"
#: Extras that serving may need (the others, like ``test``, are for development).
RUNTIME_EXTRAS = ("postgres", "redis")
#: Declared but never imported by our code, and why they are needed all the same.
USED_WITHOUT_IMPORT = {
    "jinja2": "fastapi.templating renders the console's templates with it",
    "python-multipart": "FastAPI parses the console's form posts with it",
    "psycopg": "SQLAlchemy's postgresql+psycopg driver ([postgres])",
}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, str]:
    """Declared distribution → where (``base`` or the extra's name)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = {_normalise(Requirement(r).name): "base" for r in project["dependencies"]}
    for extra in RUNTIME_EXTRAS:
        for raw in project["optional-dependencies"][extra]:
            found.setdefault(_normalise(Requirement(raw).name), extra)
    return found


def _imported() -> dict[str, set[str]]:
    """Top-level third-party module → the files importing it (lazy imports included)."""
    modules: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.partition(".")[0]
                if top != "gatehouse" and top not in sys.stdlib_module_names:
                    modules.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return modules


def test_every_import_in_src_is_a_declared_runtime_dependency() -> None:
    declared = _declared()
    owners = packages_distributions()
    undeclared = []
    for module, files in sorted(_imported().items()):
        dists = {_normalise(d) for d in owners.get(module, [])}
        if not dists & set(declared):
            undeclared.append(f"{module} (from {', '.join(sorted(dists)) or '?'}): {sorted(files)}")
    assert not undeclared, "imported but not declared in pyproject.toml:\n" + "\n".join(undeclared)


def test_every_declared_runtime_dependency_is_used() -> None:
    owners = packages_distributions()
    imported = {_normalise(d) for m in _imported() for d in owners.get(m, [])}
    unused = sorted(set(_declared()) - imported - set(USED_WITHOUT_IMPORT))
    assert not unused, f"declared in pyproject.toml but never imported by src/gatehouse: {unused}"


def test_optional_packages_are_imported_only_where_their_extra_is_needed() -> None:
    """``redis`` and ``psycopg`` are extras: the base install must start without them, so our
    code never imports them at module level."""
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                assert not any(
                    (n or "").partition(".")[0] in ("redis", "psycopg") for n in names
                ), f"{path}: a module-level import of an optional package"
