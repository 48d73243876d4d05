"""The stateless replacement services: catalog, cart, checkout, orders and auth.

One aiohttp process per instance serves all five; any instance serves any
request. Identity comes only from the gateway-minted JWT
(``adapters.wire.IDENTITY_HEADER``), session state (user, cart) from the shared
Redis record (``adapters.store``) through the shop's own view of its document
(``shop_session``), data from the monolith's SQL database.
Nothing connects at import time; ``app.make_app`` is the one place that wires
it all, ``cli.main`` the entry point (``python -m new_services serve``).

Imports only ``adapters`` of ours: never ``gateway``, ``legacy_shop`` or ``flags``.
"""
