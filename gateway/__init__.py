"""The gateway: a strangler-fig migration proxy in front of a monolith and its new services.

Rooms, each owning one concern (its ``__init__`` says what): ``edge`` (the public
listener and the request's first checks), ``routing`` (which backend, and why),
``session`` (the session bridge), ``upstream`` (the backends), ``shadow``,
``pipeline`` (the stages a request passes), ``admin``, ``observe`` (logs, metrics,
traces), ``runtime`` (a process: composition, start, reload, stop). ``errors`` and
``settings`` are the shared vocabulary. Which room may import which is tested
(tests/unit/test_dependency_rule.py).
"""
