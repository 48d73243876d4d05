"""Session: one session, consistent on the monolith and in the shared store.

It owns the bridge's algorithm (``bridge``), the store in Redis and its port
(``store``), the Redis client every Redis user of the process shares
(``redis_client``), what a node's copy means (``sync``), the per-request Redis budget
(``budget``), the monolith's export hook client (``hook``), tokens for new
services and their signing keys (``tokens``, ``signing``), and the sampler
behind session discovery (``sampler``).
"""
