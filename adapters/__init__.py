"""Pure translation between the two worlds Strangler stands between.

Unlike the "adapters" of *Architecture Patterns with Python*, nothing in this
package does I/O: no sockets, no Redis, no SQL, no clock unless passed in.
It holds the shapes both sides agree on and the functions that turn one into
the other:

- ``profile``   -- the session profile (config's ``session:``): a monolith's
                   exported session <-> the shared document, identity, and the
                   three-way merge of its fields (rules in ``merge``).
- ``document``  -- the shared session document, knowing no application.
- ``store``     -- names and Lua source for the shared session record in Redis
                   (data only; each side runs it with its own client).
- ``claims``    -- session -> JWT claims the gateway mints and services check.
- ``contracts`` -- the public shop API's JSON shapes, so the new services
                   answer byte-for-byte what the monolith answers.
- ``wire``      -- internal header and endpoint names of the session bridge.
- ``discovery`` -- statistics of sampled session exports (shapes, never values)
                   and the ``session:`` profile block they suggest.

It imports nothing of ours, so every other part may import it.
"""
