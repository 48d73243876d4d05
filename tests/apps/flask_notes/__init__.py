"""``flask_notes``: the notes app's public contract (tests/apps/notes) as a Flask app.

A real Flask app with Flask-Session's server-side sessions in a node-local
cachelib ``SimpleCache`` and the Strangler kit (kits/flask, ``strangler_flask``)
for its export hook -- the kit under test, the way a team would use it. It
keeps the routes and session keys the notes app's new service
(tests/apps/notes_node) needs for the ``state`` route group. Modules:

- ``data``   -- the session's data: its shape, the changes, the public view;
- ``bodies`` -- request JSON, strictly; ``NotesError`` and JSON answers;
- ``routes`` -- login, logout and the state routes;
- ``app``    -- ``create_app``: config, Flask-Session, the kit;
- ``wsgi``   -- the app gunicorn serves, configured from the environment.

See README.md beside this file.
"""
