"""The notes app stands for a foreign monolith: the standard library, aiohttp, itself.

Every ``import`` counts wherever it sits; its own modules are reached only by
relative imports that stay inside the package, so it names nothing of ours --
not even ``tests`` -- and could be moved anywhere.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "apps" / "notes"
ALLOWED = frozenset(sys.stdlib_module_names) | {"aiohttp", "__future__"}


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=path.name)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{path.name}:{node.lineno}: {a.name}" for a in node.names
                      if a.name.split(".")[0] not in ALLOWED]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 1 or (node.level == 0 and
                                  (node.module or "").split(".")[0] not in ALLOWED):
                found.append(f"{path.name}:{node.lineno}: {'.' * node.level}{node.module}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if name in {"import_module", "__import__"}:
                found.append(f"{path.name}:{node.lineno}: dynamic import")
    return found


def test_the_package_is_where_the_test_looks() -> None:
    assert (PACKAGE / "__main__.py").is_file() and len(list(PACKAGE.glob("*.py"))) >= 10


def test_notes_imports_only_the_standard_library_aiohttp_and_itself() -> None:
    offences = [o for p in sorted(PACKAGE.rglob("*.py")) for o in _offences(p)]
    assert offences == []
