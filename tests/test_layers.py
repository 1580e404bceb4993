"""The package's import graph: no circles, and each layer imports only the layers below it.

Every ``import`` and ``from ... import`` in ``src/graphimpute`` is read with ``ast``, at module level and
inside functions alike (a lazy import is still a dependency). ``docs/development.md`` draws the same
layers; a new module goes into ``LAYERS`` here and there.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "graphimpute"

# layer -> its modules (a trailing ".*" takes a package's submodules too)
LAYERS = {
    "base": ["_keys", "_version", "errors", "metrics", "io", "monitor", "threads", "simulate"],
    "data": ["qc", "normalise", "mask", "graphs"],
    "models": ["train", "nn", "nn.*", "methods", "methods.*"],
    "judge": ["evaluate", "verdict", "report", "summary"],
    "orchestration": ["runner", "auto", "pipeline", "samplesheet", "api"],
    "front": ["graphimpute", "__main__", "cli"],
}
# layer -> the layers it may import (itself included); the judge scores outputs and knows no model
MAY_IMPORT = {
    "base": {"base"},
    "data": {"base", "data"},
    "models": {"base", "data", "models"},
    "judge": {"base", "data", "judge"},
    "orchestration": {"base", "data", "models", "judge", "orchestration"},
    "front": set(LAYERS),
}


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["graphimpute", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (``from graphimpute import x``: module x when x is one,
    else the package that defines x)."""
    modules = _module_names()

    def owner(name: str) -> str | None:
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        return name if name in modules else None

    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against this module's package
                    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                found = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in modules else prefix for a in node.names]
            else:
                continue
            targets.update(t for t in map(owner, (f for f in found if f.split(".")[0] == "graphimpute"))
                           if t is not None and t != name)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def layer_of(module: str) -> str:
    short = module.removeprefix("graphimpute.") if module != "graphimpute" else module
    for layer, members in LAYERS.items():
        for member in members:
            if short == member or (member.endswith(".*") and short.startswith(member[:-1])):
                return layer
    raise KeyError(module)


def test_the_package_has_no_import_circle():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_every_module_has_a_layer():
    assert [m for m in import_graph() if not _has_layer(m)] == []


def _has_layer(module: str) -> bool:
    try:
        layer_of(module)
    except KeyError:
        return False
    return True


def test_each_layer_imports_only_what_it_may():
    graph = import_graph()
    wrong = sorted(f"{m} ({layer_of(m)}) imports {t} ({layer_of(t)})" for m, targets in graph.items()
                   for t in targets if layer_of(t) not in MAY_IMPORT[layer_of(m)])
    assert wrong == []


def test_the_checks_see_circles_and_lazy_imports(tmp_path, monkeypatch):
    """The walker itself: an import inside a function counts, and a two-module circle is found."""
    pkg = tmp_path / "graphimpute"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from graphimpute.b import thing\n")
    (pkg / "b.py").write_text("def thing():\n    from graphimpute import a\n")
    (pkg / "c.py").write_text("from . import a\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    graph = import_graph()
    assert graph["graphimpute.b"] == {"graphimpute.a"}
    assert graph["graphimpute.c"] == {"graphimpute.a"}
    assert find_cycle(graph) in (["graphimpute.a", "graphimpute.b", "graphimpute.a"],
                                 ["graphimpute.b", "graphimpute.a", "graphimpute.b"])


@pytest.mark.parametrize("module, layer", [("graphimpute.methods._impl.scvgae", "models"),
                                           ("graphimpute.evaluate", "judge"), ("graphimpute", "front")])
def test_layer_of(module, layer):
    assert layer_of(module) == layer
