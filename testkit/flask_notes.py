"""The Flask notes app (tests/apps/flask_notes) as a real gunicorn process: one node.

``flask_node`` is a ``notes_stack.LegacyCommand``: give it to ``NotesStack`` to
run Flask nodes as legacy. ``FLASK_NOTES_SESSION`` is the notes profile with the
one thing the Flask app does differently: of two ``sessionid`` cookies it reads
the first (werkzeug's ``request.cookies.get``), not the last.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .profiles import notes_session


def flask_node(node: str, port: int, token_file: Path) -> tuple[list[str], dict[str, str]]:
    """One worker (sessions and fences live in its memory), eight threads, no control
    socket (gunicorn's default one is a fixed path that nodes would fight over)."""
    argv = [sys.executable, "-m", "gunicorn", "--workers", "1", "--threads", "8",
            "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "3", "--no-control-socket",
            "tests.apps.flask_notes.wsgi:app"]
    return argv, {"NOTES_NODE_ID": node, "NOTES_INTERNAL_TOKEN_FILE": str(token_file)}


def flask_notes_session() -> dict[str, Any]:
    return {**notes_session(), "duplicate_cookies": "first"}
