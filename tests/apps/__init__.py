"""Stand-in applications the gateway is tested against, besides ``legacy_shop``.

Each one is a foreign app: it imports nothing of Strangler's (only the standard
library and aiohttp), so a test that passes with it proves the gateway works for
a monolith it was not written alongside.
"""
