"""The monolith's command line (parsing only; the process test runs it for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from legacy_shop.cli import TOKEN_ENV, build_parser, read_token
from legacy_shop.settings import DEFAULT_DATABASE_URL, Settings


def test_serve_arguments() -> None:
    args = build_parser().parse_args(
        ["serve", "--node-id", "b", "--host", "::1", "--port", "9000",
         "--database-url", "sqlite:///x.db", "--internal-token-file", "/tmp/t"]
    )
    assert (args.command, args.node_id, args.host, args.port) == ("serve", "b", "::1", 9000)
    assert args.database_url == "sqlite:///x.db" and args.internal_token_file == Path("/tmp/t")


def test_defaults() -> None:
    args = build_parser().parse_args(["init-db"])
    assert args.database_url == DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///./.strangler/shop.db"


def test_a_command_is_required() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_token_from_file_wins_over_env(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("  from-file\n")
    assert read_token(path, {TOKEN_ENV: "from-env"}) == "from-file"
    assert read_token(None, {TOKEN_ENV: "from-env"}) == "from-env"
    assert read_token(None, {}) is None
    assert read_token(None, {TOKEN_ENV: "  "}) is None


def test_settings_hide_the_token_and_reject_nonsense() -> None:
    assert "sekret" not in repr(Settings(internal_token="sekret"))
    with pytest.raises(ValueError):
        Settings(node_id="")
    with pytest.raises(ValueError):
        Settings(session_idle_s=0)
