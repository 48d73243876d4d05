"""Settings of one trips node, from the environment.

- ``TRIPS_NODE_ID``: this node's id (default ``a``), in the headers and ``/healthz``.
- ``TRIPS_DB``: the SQLite file (default ``trips.sqlite3`` here); WAL and a busy
  timeout, so the nodes share it.
- ``TRIPS_SECRET_KEY_FILE`` (or ``TRIPS_SECRET_KEY``): required, the same on every
  node: ``_auth_user_hash`` in each session is an HMAC under it, so a session
  imported from another node only stays logged in with the same key.
- ``TRIPS_INTERNAL_TOKEN_FILE``: the session-export hook's token; without it the
  hook answers 503.

Sessions live in this process's memory (the cache engine on a local-memory
cache): each node holds its own, truly sticky, and a restart loses them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _secret_key() -> str:
    path = os.environ.get("TRIPS_SECRET_KEY_FILE")
    if path:
        try:
            key = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"TRIPS_SECRET_KEY_FILE {path}: {exc}") from None
    else:
        key = os.environ.get("TRIPS_SECRET_KEY", "").strip()
    if len(key) < 32:
        raise ImproperlyConfigured(
            "set TRIPS_SECRET_KEY_FILE (a file holding at least 32 characters) or "
            "TRIPS_SECRET_KEY, the same on every node: sessions moved between nodes carry "
            "an HMAC under it (_auth_user_hash), and a different key logs their user out")
    return key


SECRET_KEY = _secret_key()
NODE_ID = os.environ.get("TRIPS_NODE_ID", "a")
BOOT_ID = secrets.token_hex(8)
"""New at every start: tells the gateway this node's sessions are gone."""
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "planner",
    "strangler_django",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "strangler_django.middleware.RevisionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
# No CsrfViewMiddleware: a JSON API whose clients (the gateway's rehearsals, the
# new service's tests) post JSON without a CSRF token.

ROOT_URLCONF = "trips.urls"
WSGI_APPLICATION = "trips.wsgi.application"
AUTH_USER_MODEL = "planner.User"
PASSWORD_HASHERS = ["planner.hashers.DemoPBKDF2PasswordHasher"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TRIPS_DB", str(BASE_DIR / "trips.sqlite3")),
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_CACHE_ALIAS = "sessions"
SESSION_COOKIE_NAME = "sessionid"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": "trips-default"},
    "sessions": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                 "LOCATION": "trips-sessions",
                 # locmem culls past MAX_ENTRIES (300 by default): that would log people out
                 "OPTIONS": {"MAX_ENTRIES": 1_000_000}},
}

STRANGLER = {
    "NODE_ID": NODE_ID,
    "INTERNAL_TOKEN_FILE": os.environ.get("TRIPS_INTERNAL_TOKEN_FILE") or None,
    "HEADERS": {"session_id": "X-Trips-Session", "revision": "X-Trips-Rev",
                "node": "X-Trips-Node"},
    "MAX_IMPORT_BYTES": 256 * 1024,
}

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    # 4xx answers are the API working as designed; 5xx still log with their traceback
    "loggers": {"django.request": {"level": "ERROR"}},
}
