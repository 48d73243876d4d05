"""The notes monolith in Express (tests/apps/express_notes, on kits/express): installed on
first use, run as ``node server.js``; the session profile a gateway needs in front of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import npm
from .procs import ROOT
from .profiles import notes_session

EXPRESS_APP = ROOT / "tests" / "apps" / "express_notes"
KIT = ROOT / "kits" / "express"


def ensure_installed() -> None:
    """``npm ci`` in the app's folder unless its node_modules is newer than it and the kit."""
    npm.ensure_installed(EXPRESS_APP, local_packages=[KIT])


def express_node(node: str, port: int, token_file: Path) -> tuple[list[str], dict[str, str]]:
    """The command line (and no extra environment) that starts one node, after
    installing the app if needed: ``NotesStack``'s ``legacy_command``."""
    ensure_installed()
    return ["node", str(EXPRESS_APP / "server.js"), "--port", str(port), "--node", node,
            "--internal-token-file", str(token_file)], {}


def express_notes_session() -> dict[str, Any]:
    """The notes profile as the Express app needs it: express-session reads the first of
    two ``sessionid`` cookies (the ``cookie`` package keeps the first), not the last."""
    session = notes_session()
    session["duplicate_cookies"] = "first"
    return session
