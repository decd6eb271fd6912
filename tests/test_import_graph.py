"""edgekit's modules import each other without a circle (issue #20: "no import circle in
edgekit/"), counting imports inside functions too, which would hide one; imports under
`if TYPE_CHECKING:` are for annotations only and not counted."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgekit"


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = f.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _imports(tree: ast.AST, modules: dict[str, Path]) -> set[str]:
    """The edgekit modules `tree` imports at run time (a package's submodule when it names one)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
            found.update(subs if len(subs) == len(node.names) else [node.module, *subs])
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found & set(modules)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while (w := stack.pop()) != v:
                part.append(w)
            if part:
                out.append(sorted([v, *part]))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_the_cycle_finder_finds_a_hidden_circle() -> None:
    modules = {"edgekit.a": Path("a"), "edgekit.b": Path("b"), "edgekit.c": Path("c")}
    a = ast.parse("from edgekit import b\n")
    b = ast.parse("def f():\n    from edgekit.a import x\n")  # hidden in a function: counted
    c = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from edgekit import a\n")
    graph = {"edgekit.a": _imports(a, modules), "edgekit.b": _imports(b, modules), "edgekit.c": _imports(c, modules)}
    assert graph == {"edgekit.a": {"edgekit.b"}, "edgekit.b": {"edgekit.a"}, "edgekit.c": set()}
    assert _cycles(graph) == [["edgekit.a", "edgekit.b"]]


def test_edgekit_has_no_import_circle() -> None:
    modules = _modules()
    assert "edgekit.convert.pipeline" in modules and "edgekit.bench.assembly" in modules
    graph = {m: _imports(ast.parse(f.read_text(encoding="utf-8")), modules) - {m} for m, f in modules.items()}
    assert _cycles(graph) == []
