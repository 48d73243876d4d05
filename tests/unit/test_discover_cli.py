"""``strangler session discover``: what it refuses before sampling anything, and its table."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.discovery import SessionShapes
from strangler.cli import main
from strangler.discover_cli import table

CONFIG = str(Path(__file__).resolve().parents[2] / "config.yaml")


@pytest.mark.parametrize(("argv", "says"), [
    (["--hook", "http://127.0.0.1:9"], "needs at least one --session-id"),
    (["--session-id", "abc"], "go with --hook"),
    (["--hook", "file:///etc", "--session-id", "abc", "--token-file", __file__],
     "not an http(s) URL"),
    (["--hook", "http://127.0.0.1:9", "--session-id", "abc", "--cookie", "a b"],
     "is not a cookie name"),
    (["--hook", "http://127.0.0.1:9", "--session-id", "abc", "--headers", "X-A,X-A,X-B"],
     "three names"),
])
def test_refused_before_any_export(argv: list[str], says: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", CONFIG, "session", "discover", *argv]) == 2
    assert says in capsys.readouterr().err


def test_no_config_is_fine_with_a_hook_and_a_token_file(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    code = main(["--config", str(tmp_path / "none.yaml"), "session", "discover", "--hook",
                 "http://127.0.0.1:9", "--session-id", "abc", "--token-file", str(token),
                 "--samples", "1"])
    assert code == 1 and "cannot reach the hook" in capsys.readouterr().err


def test_the_table_shows_figures_per_path_and_no_value() -> None:
    shapes = SessionShapes()
    shapes.add("a", 0.0, {"uid": 7, "csrf": "Tok3nTok3nTok3nTok3n"})
    shapes.add("a", 1.0, {"uid": 7, "csrf": "Tok3nTok3nTok3nTok3nX"})
    text = table(shapes.summary())
    assert text.splitlines()[0] == "2 samples of 1 sessions"
    assert "/csrf" in text and "token:2" in text and "1/1" in text
    assert "Tok3n" not in text
