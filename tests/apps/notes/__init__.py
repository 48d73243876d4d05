"""``notes``: a second, small monolith of a deliberately different shape.

A note-taking app that keeps its sessions in process memory the way a Django
app would: a ``sessionid`` cookie, string user ids (``u-1001``), Django-style
``_auth_user_id`` keys, guest sessions that writes create, and session data
full of keys a gateway profile would not declare (a CSRF token, float
timestamps, nested arrays, unicode keys). It speaks the session-export hook of
docs/protocol.md section 4 under its own header names (``X-Notes-*``).

It stands for a foreign app: it imports only the standard library and aiohttp,
and only relative imports of itself, so it could be moved anywhere
(tests/unit/test_notes_imports.py holds it to that). Modules:

- ``users``    -- who can log in (built in, or a JSON file);
- ``data``     -- the session's data: its shape, what each route does to it,
                  and the public view of it (pure functions);
- ``store``    -- sessions by id: revisions, fences, imports (no HTTP);
- ``cookies``  -- which ``sessionid`` a request carries (the last one wins);
- ``bodies``   -- untrusted bytes -> JSON values, or a 400/413; JSON out;
- ``errors``   -- ``NotesError``, the one refusal the handlers raise;
- ``settings`` -- what one node runs with;
- ``web``      -- app keys, the per-request session, the response headers;
- ``routes``   -- the app's own JSON routes and its one HTML page;
- ``hook``     -- ``/_internal/sessions/{sid}``: export, import, delete;
- ``app``      -- wiring; ``__main__`` -- the command line.

See README.md beside this file.
"""
