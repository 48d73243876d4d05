"""Admin: the admin listener's API and dashboard.

Health, readiness, metrics, routes and flips (``api``), the ledger, pins and
explain (``flags``), session discovery (``session``), the shadow's findings
(``shadow``) and the page at ``/`` (``dashboard``). ``POST /api/reload`` belongs
to the runtime (``gateway.runtime.reload_api``).
"""
