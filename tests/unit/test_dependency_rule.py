"""The dependency rule of docs/architecture.md ("Parts and the dependency rule"), enforced.

    gateway       -> flags, adapters
    flags         -> nothing of ours
    adapters      -> nothing of ours
    legacy_shop   -> adapters, and only from its session-export hook
    strangler_sdk -> adapters
    new_services  -> adapters, strangler_sdk
    testkit       -> gateway, flags, adapters, strangler (its processes and ports)
    strangler     -> anything but tests, bench and testkit (the CLI and tools, installed)
    bench         -> gateway, flags, adapters, strangler, testkit; never tests
    nobody else   -> strangler (the CLI composition root); nobody -> bench or tests

Every ``import`` / ``from ... import`` counts, wherever it sits (module level,
inside a function, under ``TYPE_CHECKING``); relative imports are resolved, and
``importlib.import_module("...")`` / ``__import__("...")`` with a literal name
count too. A failure lists every offending ``file:line``.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = frozenset({"gateway", "flags", "adapters", "legacy_shop", "new_services", "strangler",
                  "strangler_sdk", "testkit", "bench", "tests"})
PARTS = ("gateway", "flags", "adapters", "legacy_shop", "new_services", "strangler_sdk",
         "testkit", "strangler", "bench")
EXPORT_HOOK = "legacy_shop/export_hook.py"

ALLOWED: dict[str, frozenset[str]] = {
    "gateway": frozenset({"flags", "adapters"}),
    "flags": frozenset(),
    "adapters": frozenset(),
    "legacy_shop": frozenset(),  # adapters only in EXPORT_HOOK, below
    "new_services": frozenset({"adapters", "strangler_sdk"}),
    "strangler_sdk": frozenset({"adapters"}),
    "testkit": frozenset({"gateway", "flags", "adapters", "strangler"}),
    "strangler": OURS - {"tests", "bench", "testkit"},
    "bench": frozenset({"gateway", "flags", "adapters", "strangler", "testkit"}),
}


@dataclass(frozen=True)
class Import:
    file: str
    line: int
    module: str

    @property
    def root(self) -> str:
        return self.module.split(".")[0]

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: imports {self.module}"


def _package_of(path: Path) -> list[str]:
    """The package a module's relative imports start from (its directory, also for __init__)."""
    return list(path.relative_to(ROOT).parts[:-1])


def imports_of(path: Path) -> list[Import]:
    rel = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(rel, node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                package = _package_of(path)
                base = ".".join(package[: max(len(package) - node.level + 1, 0)])
                if node.module:
                    base = f"{base}.{node.module}" if base else node.module
            if base:
                found.append(Import(rel, node.lineno, base))
            else:  # "from .. import x" out of the top: x is the package itself
                found += [Import(rel, node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = (func.attr if isinstance(func, ast.Attribute)
                    else func.id if isinstance(func, ast.Name) else "")
            arg = node.args[0]
            if name in ("import_module", "__import__") and isinstance(arg, ast.Constant) \
                    and isinstance(arg.value, str):
                found.append(Import(rel, node.lineno, arg.value))
    return found


def part_files(part: str) -> list[Path]:
    return sorted((ROOT / part).rglob("*.py"))


def violations(part: str) -> list[Import]:
    bad = []
    for path in part_files(part):
        for imp in imports_of(path):
            root = imp.root
            if root not in OURS or root == part:
                continue
            if root in ALLOWED[part]:
                continue
            if part == "legacy_shop" and root == "adapters" and imp.file == EXPORT_HOOK:
                continue
            bad.append(imp)
    return bad


@pytest.mark.parametrize("part", PARTS)
def test_dependency_rule(part: str) -> None:
    assert part_files(part), f"{part}/ has no Python files: is ROOT right?"
    bad = violations(part)
    assert not bad, f"{part} breaks the dependency rule of docs/architecture.md:\n" + "\n".join(
        f"  {imp}" for imp in bad)


def test_the_export_hook_is_where_legacy_meets_adapters() -> None:
    hook = ROOT / EXPORT_HOOK
    assert hook.exists()
    assert any(imp.root == "adapters" for imp in imports_of(hook))


# ---------------------------------------------------------------- the checker itself


def _write(tmp_path: Path, rel: str, text: str) -> Path:
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_checker_sees_every_kind_of_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    path = _write(tmp_path, "legacy_shop/views.py", "\n".join([
        "import os",
        "import gateway.runtime.app",
        "from new_services import cart",
        "def late():",
        "    from strangler.cli import main",
        "    import importlib",
        "    importlib.import_module('flags.view')",
        "from . import sessions",
        "from .. import tests",
        "from ..adapters import session",
        "",
    ]))
    got = {(i.line, i.module) for i in imports_of(path)}
    assert got == {(1, "os"), (2, "gateway.runtime.app"), (3, "new_services"), (5, "strangler.cli"),
                   (6, "importlib"), (7, "flags.view"), (8, "legacy_shop"), (9, "tests"),
                   (10, "adapters")}


def test_failure_message_lists_every_offender(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    _write(tmp_path, "flags/a.py", "import adapters\nimport gateway.errors\n")
    _write(tmp_path, "flags/sub/b.py", "def f():\n    from strangler import cli\n")
    _write(tmp_path, "flags/ok.py", "from flags.model import Stage\nimport yaml\n")
    assert [str(v) for v in violations("flags")] == [
        "flags/a.py:1: imports adapters",
        "flags/a.py:2: imports gateway.errors",
        "flags/sub/b.py:2: imports strangler",
    ]
    _write(tmp_path, "legacy_shop/export_hook.py", "from adapters import session\n")
    _write(tmp_path, "legacy_shop/api.py", "from adapters.contracts import money\n")
    assert [str(v) for v in violations("legacy_shop")] == [
        "legacy_shop/api.py:1: imports adapters.contracts",
    ]


def test_bench_may_use_testkit_but_never_tests(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    _write(tmp_path, "bench/rig.py", "\n".join([
        "from testkit.stack import Stack",
        "from tests.support.shop import Admin",
        "import gateway.runtime.app",
        "from strangler.rehearse import stats",
        "",
    ]))
    _write(tmp_path, "testkit/stack.py", "from gateway.session.signing import public_jwk\n"
                                         "from strangler.keys import ensure_keypair\n"
                                         "from bench.rig import Rig\n")
    _write(tmp_path, "strangler/demo.py", "from strangler.procs import Process\n"
                                          "from testkit.net import free_port\n")
    assert [str(v) for v in violations("bench")] == [
        "bench/rig.py:2: imports tests.support.shop",
    ]
    assert [str(v) for v in violations("testkit")] == [
        "testkit/stack.py:3: imports bench.rig",
    ]
    assert [str(v) for v in violations("strangler")] == [
        "strangler/demo.py:2: imports testkit.net",
    ]
