"""new_services imports only ``adapters`` of ours (docs/architecture.md, the dependency rule)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "new_services"
FORBIDDEN = {"gateway", "legacy_shop", "flags", "strangler", "tests"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_new_services_imports_nothing_of_ours_but_adapters() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert modules
    offenders = {p.name: imported_roots(p) & FORBIDDEN for p in modules}
    assert {name: roots for name, roots in offenders.items() if roots} == {}

