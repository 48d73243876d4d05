"""strangler_sdk's core knows no web framework: only ``strangler_sdk/aiohttp.py`` may
import one (a Flask or Django layer would sit beside it the same way)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "strangler_sdk"
FRAMEWORKS = {"aiohttp", "django", "flask", "starlette", "fastapi", "werkzeug", "multidict"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_core_imports_no_web_framework() -> None:
    core = [p for p in sorted(PACKAGE.glob("*.py")) if p.name != "aiohttp.py"]
    assert len(core) >= 8, "the core's modules are where this test looks"
    found = {p.name: imported_roots(p) & FRAMEWORKS for p in core}
    assert {name: roots for name, roots in found.items() if roots} == {}


def test_the_aiohttp_layer_is_where_aiohttp_is() -> None:
    assert "aiohttp" in imported_roots(PACKAGE / "aiohttp.py")
