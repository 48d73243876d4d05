"""The dependency rule of docs/architecture.md, as it applies to the monolith.

``legacy_shop`` may import ``adapters`` only in its session-export hook, and
never the gateway, the new services, the flags or the ``strangler`` CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import legacy_shop

PACKAGE = Path(legacy_shop.__file__).parent
FORBIDDEN = {"gateway", "new_services", "flags", "strangler"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_export_hook_imports_adapters() -> None:
    users = {p.name for p in PACKAGE.rglob("*.py") if "adapters" in _imports(p)}
    assert users == {"export_hook.py"}


def test_no_import_of_the_other_parts() -> None:
    for path in PACKAGE.rglob("*.py"):
        assert not _imports(path) & FORBIDDEN, path.name
