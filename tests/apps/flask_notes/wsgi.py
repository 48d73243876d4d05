"""The app gunicorn serves: ``python -m gunicorn 'tests.apps.flask_notes.wsgi:app'``.

Configured from the environment: ``NOTES_NODE_ID`` (required) and
``NOTES_INTERNAL_TOKEN_FILE`` (optional; without it the hook answers 503).
Run it with one worker (``--workers 1 --threads 8``): sessions and fences
live in that one process's memory.
"""

from __future__ import annotations

import os
from pathlib import Path

from .app import create_app

_token = os.environ.get("NOTES_INTERNAL_TOKEN_FILE")
app = create_app(os.environ["NOTES_NODE_ID"], Path(_token) if _token else None)
