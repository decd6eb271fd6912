"""No untyped dict crosses a module boundary in edgekit/bench/ or edgekit/convert/ (issue #20:
"no `dict[str, Any]` crosses a module boundary"): a public function's or method's parameters and
return, and a public class's attributes, are never `dict[str, Any]` or `dict[str, object]`.
Private helpers (a leading underscore) may keep plain dicts inside their module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgekit"
UNTYPED = re.compile(r"\b(?:dict|Dict|Mapping|MutableMapping)\[str, (?:Any|object)\]")
ALLOWED: dict[str, str] = {}
"""`module:qualified.name` -> why it must stay untyped. Empty: nothing must."""


def _public(name: str) -> bool:
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))


def _untyped(path: Path, package: Path = PACKAGE) -> list[str]:
    """`module:name (where)` of every public annotation in `path` (a file of `package`) that holds an untyped dict."""
    module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
    found: list[str] = []

    def check(annotation: ast.expr | None, name: str, where: str) -> None:
        if annotation is not None and UNTYPED.search(ast.unparse(annotation)):
            found.append(f"{module}:{name} ({where}: {ast.unparse(annotation)})")

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef) and _public(node.name):
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(node.name):
                name = prefix + node.name
                args = node.args
                for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                    if a is not None:
                        check(a.annotation, name, f"parameter {a.arg}")
                check(node.returns, name, "return")
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and _public(node.target.id):
                check(node.annotation, prefix + node.target.id, "attribute")

    visit(ast.parse(path.read_text(encoding="utf-8")).body, "")
    return found


def test_no_public_name_in_bench_or_convert_takes_or_gives_an_untyped_dict() -> None:
    files = [f for sub in ("bench", "convert") for f in sorted((PACKAGE / sub).rglob("*.py"))]
    assert len(files) > 20  # the walk found the packages
    found = [f for path in files for f in _untyped(path) if f.split(" ")[0] not in ALLOWED]
    assert found == []


def test_the_check_sees_an_untyped_dict(tmp_path: Path) -> None:
    """The walk finds what it is meant to find (so an empty result above means something)."""
    probe = tmp_path / "edgekit" / "convert" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from typing import Any\n"
        "def shown(config: dict[str, Any]) -> None: ...\n"
        "def _hidden(config: dict[str, Any]) -> None: ...\n"
        "def typed(config: dict[str, int]) -> None: ...\n"
        "class Record:\n"
        "    data: dict[str, object]\n"
        "    def to_dict(self) -> dict[str, Any] | None: ...\n"
        "class _Private:\n"
        "    def to_dict(self) -> dict[str, Any]: ...\n"
    )
    found = _untyped(probe, tmp_path / "edgekit")
    assert [f.split(" ")[0] for f in found] == [
        "edgekit.convert.probe:shown",
        "edgekit.convert.probe:Record.data",
        "edgekit.convert.probe:Record.to_dict",
    ]
