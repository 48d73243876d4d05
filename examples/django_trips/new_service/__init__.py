"""The trips example's new service: a small stateless aiohttp app on ``strangler_sdk``.

It serves the routes CONTRACT.md marks ``B`` with the JSON the Django app
answers: destinations from Django's ``planner_destination`` table (read-only,
SQLAlchemy), the session-held state from the shared session record through
the SDK and the deployment's ``session:`` profile (examples/django_trips/config.yaml).
"""
