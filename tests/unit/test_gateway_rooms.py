"""gateway/ is rooms by concern, and the dependency rule holds inside it too.

    errors, settings  the shared vocabulary (settings reuses two validators:
                      edge.hosts' syntax and shadow.compare's rule check)
    observe           -> nothing of the gateway's
    upstream, edge    -> observe
    session           -> upstream, observe
    routing           -> session, upstream, edge, observe
    shadow            -> session, upstream, observe, and the pipeline's vocabulary
                         (pipeline.exchange) only
    pipeline          -> routing, session, upstream, edge, observe (the shadow
                         stage only through a port it declares)
    admin             -> everything above but pipeline
    runtime           -> anything (the composition root)

Inside the pipeline, stages do not import each other: each may import only the
exchange it works on (pipeline.exchange); the chain imports them all. Every room
has a docstring saying what it owns.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.unit.test_dependency_rule import ROOT, imports_of

GATEWAY = ROOT / "gateway"
SHARED = frozenset({"errors", "settings"})
ROOMS: dict[str, frozenset[str]] = {
    "observe": frozenset(),
    "upstream": frozenset({"observe"}),
    "edge": frozenset({"observe"}),
    "session": frozenset({"upstream", "observe"}),
    "routing": frozenset({"session", "upstream", "edge", "observe"}),
    "shadow": frozenset({"session", "upstream", "observe"}),
    "pipeline": frozenset({"routing", "session", "upstream", "edge", "observe"}),
    "admin": frozenset({"routing", "session", "upstream", "edge", "observe", "shadow"}),
    "runtime": frozenset({"admin", "pipeline", "routing", "session", "upstream", "edge",
                          "observe", "shadow"}),
}
EXCEPTIONS = {
    # (room, module imported): why
    ("settings", "gateway.edge.hosts"): "the Host syntax check, reused to validate config",
    ("settings", "gateway.shadow.compare"): "the comparison rule check, reused likewise",
    ("shadow", "gateway.pipeline.exchange"): "the exchange a shadow copy is made from",
}


def _room_of(path: Path) -> str:
    parts = path.relative_to(GATEWAY).parts
    return parts[0].removesuffix(".py") if len(parts) == 1 else parts[0]


def _gateway_imports() -> list[tuple[str, str, str]]:
    """(room, importing file:line, module) for every import of a gateway module."""
    found = []
    for path in sorted(GATEWAY.rglob("*.py")):
        room = _room_of(path)
        for imp in imports_of(path):
            parts = imp.module.split(".")
            if parts[0] == "gateway" and len(parts) > 1:
                found.append((room, f"{imp.file}:{imp.line}", imp.module))
    return found


def test_there_are_no_loose_modules_but_the_shared_ones() -> None:
    loose = {p.stem for p in GATEWAY.glob("*.py")} - {"__init__"}
    assert loose == SHARED
    assert {p.name for p in GATEWAY.iterdir() if p.is_dir() and p.name != "__pycache__"} \
        == set(ROOMS)


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_every_room_says_what_it_owns(room: str) -> None:
    doc = ast.get_docstring(ast.parse((GATEWAY / room / "__init__.py").read_text()))
    assert doc and len(doc) > 80 and "TODO" not in doc, f"gateway/{room} has no docstring"


def test_rooms_import_only_what_the_rule_allows() -> None:
    wrong = []
    for room, where, module in _gateway_imports():
        target = module.split(".")[1]
        if target == room or target in SHARED:
            continue
        if (room, module) in EXCEPTIONS or (room, ".".join(module.split(".")[:3])) in EXCEPTIONS:
            continue
        if room in SHARED or target not in ROOMS[room]:
            wrong.append(f"{where}: gateway/{room} imports {module}")
    assert wrong == [], "\n".join(wrong)


def test_shared_modules_import_no_room_but_their_exceptions() -> None:
    wrong = [f"{where}: {module}" for room, where, module in _gateway_imports()
             if room == "errors" and module != "gateway.errors"]
    assert wrong == []


def test_pipeline_stages_do_not_import_each_other() -> None:
    stages = GATEWAY / "pipeline"
    sideways = []
    for path in sorted(stages.glob("*.py")):
        if path.stem in ("__init__", "chain", "exchange"):
            continue
        for imp in imports_of(path):
            if imp.module.startswith("gateway.pipeline") and \
                    imp.module != "gateway.pipeline.exchange":
                sideways.append(str(imp))
    assert sideways == [], "\n".join(sideways)
