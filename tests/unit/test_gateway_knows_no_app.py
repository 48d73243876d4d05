"""gateway/ and flags/ know no application: the shop's cookie, session keys, headers and
cart come from config (the session profile), never from code (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOP_WORDS = re.compile(r"shop_session|x-shop|basket|uname|\buid\b|settled|\bcart\b|\bsku\b",
                        re.IGNORECASE)


def _code_words(path: Path) -> list[tuple[int, str]]:
    """String literals that are not documentation (a bare string statement: docstrings and
    attribute docstrings), and every name the code binds or reads."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.value) for n in ast.walk(tree)
                  if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.arg):
            found.append((node.lineno, node.arg))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.append((node.lineno, node.name))
    return found


@pytest.mark.parametrize("part", ["gateway", "flags"])
def test_no_shop_in_the_code(part: str) -> None:
    bad = [f"{p.relative_to(ROOT)}:{line}: {word!r}"
           for p in sorted((ROOT / part).rglob("*.py"))
           for line, word in _code_words(p) if SHOP_WORDS.search(word.replace("_", " "))
           or SHOP_WORDS.search(word)]
    assert not bad, "application knowledge in " + part + ":\n" + "\n".join(bad)


def test_the_check_would_see_a_cookie_name(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text('"""A cart in a docstring is fine."""\nCOOKIE = "shop_session"\n'
                    'if cart:\n    pass\n')
    assert [w for _, w in _code_words(path) if SHOP_WORDS.search(w)] == ["shop_session", "cart"]
