"""``create_app``: the one place that wires a node -- config, Flask-Session, the kit, routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cachelib import SimpleCache
from flask import Flask, Response
from flask_session import Session
from strangler_flask import Strangler
from werkzeug.exceptions import HTTPException

from .bodies import NotesError, json_response
from .routes import bp

HEADERS = ["X-Notes-Session", "X-Notes-Rev", "X-Notes-Node"]
MAX_BODY_BYTES = 256 * 1024
MAX_SESSIONS = 100_000
"""SimpleCache forgets the oldest entries past its threshold (500 by default)."""


def create_app(node_id: str, token_file: Path | None, **config: Any) -> Flask:
    """A node: sessions in this process's memory (``SimpleCache``), the hook on
    ``/_internal/sessions`` (off, 503, without ``token_file``). ``config`` overrides."""
    app = Flask(__name__)
    app.config.update(
        SESSION_TYPE="cachelib",
        SESSION_CACHELIB=SimpleCache(threshold=MAX_SESSIONS),
        SESSION_COOKIE_NAME="sessionid",
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        STRANGLER_NODE_ID=node_id,
        STRANGLER_HEADERS=HEADERS,
    )
    if token_file is not None:
        app.config["STRANGLER_INTERNAL_TOKEN_FILE"] = str(token_file)
    app.config.update(config)
    Session(app)
    Strangler(app)
    app.register_blueprint(bp)
    app.register_error_handler(NotesError, lambda exc: exc.response())
    app.register_error_handler(HTTPException, _http_error)
    return app


def _http_error(exc: HTTPException) -> Response:
    return json_response({"error": (exc.name or "error").lower().replace(" ", "_")},
                         exc.code or 500)
