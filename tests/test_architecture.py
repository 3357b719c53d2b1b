"""The package's layers, checked on its import graph (docs/architecture.md draws it).

Every ``import`` of ``genimg_export`` code that runs, at module level or inside
a function (not those for type annotations only), must point to the importer's own layer or one below it, and no two
modules may import each other, directly or round a longer circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "genimg_export"

# bottom-up; a module may import its own layer and the ones below
LAYERS = [
    {"genimg_export", "errors"},
    {"fs"},
    {"artifacts"},
    {"zoo"},
    {"runners"},
    {"exporters"},
    {"train", "generation"},
    {"parity", "bench"},
    {"cli", "__main__"},
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (``from a import b`` counts b when b is a module)."""
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
            found.update(n for n in names if n in modules)
            if not any(n in modules for n in names):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in modules}


def _runtime_nodes(tree):
    """Every node except those under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue
        yield node
        yield from _runtime_nodes(node)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    files = {_module_name(p): p for p in package.rglob("*.py")}
    return {m: _imports(p, set(files)) - {m} for m, p in files.items()}


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else module
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{module} is in no layer: add its top-level name to LAYERS and docs/architecture.md")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
        for m, deps in graph.items()
        for d in deps
        if layer_of(d) > layer_of(m)
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_sits_in_a_layer():
    for module in import_graph():
        layer_of(module)


def test_no_import_runs_up_a_layer():
    assert upward_imports(import_graph()) == []


def test_no_import_circle():
    # a package's __init__ re-exporting its own submodule is not a circle of design
    graph = {m: {d for d in deps if not m.startswith(d + ".") and not d.startswith(m + ".")}
             for m, deps in import_graph().items()}
    assert cycles(graph) == []


@pytest.mark.parametrize("broken", ["upward", "circle"])
def test_the_checks_catch_a_broken_graph(broken):
    graph = {"genimg_export.fs": set(), "genimg_export.zoo.a": {"genimg_export.fs"},
             "genimg_export.zoo.b": {"genimg_export.zoo.a"}}
    if broken == "upward":
        graph["genimg_export.fs"] = {"genimg_export.zoo.a"}
        assert upward_imports(graph) == [
            "genimg_export.fs (layer 1) imports genimg_export.zoo.a (layer 3)"
        ]
    else:
        graph["genimg_export.zoo.a"].add("genimg_export.zoo.b")
        assert cycles(graph) == [["genimg_export.zoo.a", "genimg_export.zoo.b"]]


@pytest.mark.parametrize("dist", ["serving/genimg_serving", "edge/genimg_edge"])
def test_the_small_distributions_never_import_the_toolchain(dist):
    offenders = []
    for path in (ROOT / dist).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "genimg_export"]
    assert offenders == []
