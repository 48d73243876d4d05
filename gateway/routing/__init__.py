"""Routing: which backend serves a request, and why.

It owns route matching (``routes``), the one decision (``decide``: kill switch,
breaker, stage, canary bucket, pins via ``pinning``), the guards of the new side
(``breaker``, ``budget``: the retry budget), the fallback rules as data
(``fallback``) and their narration for the admin API (``explain``).
"""
