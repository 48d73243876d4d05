"""``strangler_flask``: Strangler's session-export hook for Flask, on Flask-Session.

Add it to an app that keeps server-side sessions with Flask-Session (a
node-local store such as cachelib's ``SimpleCache``)::

    app.config.update(SESSION_TYPE="cachelib", SESSION_CACHELIB=SimpleCache(),
                      STRANGLER_NODE_ID="a", STRANGLER_INTERNAL_TOKEN_FILE="token",
                      STRANGLER_HEADERS=["X-Session-Id", "X-Session-Rev", "X-Session-Node"])
    Session(app)
    Strangler(app)

and call ``regenerate()`` at login. It implements docs/protocol.md section 4:
the session headers, a revision per session, fences, compare-and-set imports
and ``/_internal/sessions/<sid>``. Modules:

- ``settings`` -- the ``STRANGLER_*`` config keys;
- ``extension`` -- ``Strangler``, ``regenerate``, the session setup check;
- ``interface`` -- the ``SessionInterface`` wrapper: revisions and headers;
- ``store`` -- sessions by id through Flask-Session, fences, the lock;
- ``hook`` -- the blueprint; ``jsonio`` -- strict JSON; ``ids`` -- what an id may be;
- ``errors`` -- ``StranglerConfigError``, ``HookError``.

See README.md beside this package.
"""

from .errors import StranglerConfigError
from .extension import Strangler, regenerate
from .store import RESERVED_KEY

__all__ = ["RESERVED_KEY", "Strangler", "StranglerConfigError", "regenerate"]
