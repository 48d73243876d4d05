"""The monolith being migrated: a small shop with sessions in process memory.

It is deliberately ordinary: aiohttp handlers, SQLAlchemy Core, a session dict
per node, server-rendered HTML. The only concession to the migration is the
session-export hook (``export_hook``), the single module allowed to import
``adapters``. Everything is wired in ``app.create_app``; ``cli`` runs it.

Modules, one concept each:

- ``settings``     -- the frozen ``Settings`` a node runs with.
- ``state``        -- typed app/request keys (imports nothing of ours).
- ``db``           -- table definitions and engine creation (SQLite pragmas).
- ``seed``         -- ``init_db``: create tables and seed, safe to run concurrently.
- ``passwords``    -- argon2id hashing and verification off the event loop.
- ``sessions``     -- the in-memory session store (revisions, idle expiry).
- ``web_sessions`` -- cookie handling and the per-request session state.
- ``validation``   -- parsing untrusted input (JSON, forms, paths) into values or 4xx.
- ``render``       -- the public API's JSON shapes (the reference implementation).
- ``errors``       -- the API's error codes and the middleware that renders them.
- ``queries``      -- SQL reads: products, users, orders.
- ``checkout``     -- order placement with the shared idempotency algorithm.
- ``api``          -- the JSON shop API handlers.
- ``pages``        -- the HTML page at ``/`` and its form endpoints under ``/ui``.
- ``views``        -- the page's HTML (string templates, everything escaped).
- ``export_hook``  -- session headers and ``/_internal/sessions/{sid}``.
- ``log``          -- structlog setup and the request-id middleware.
- ``app``          -- ``create_app``: wiring.
- ``cli``          -- ``python -m legacy_shop serve|init-db``.
- ``web_util``     -- small aiohttp helpers (JSON/redirect responses, TLS check).
- ``testing``      -- helpers for tests that drive a node in-process.
"""
