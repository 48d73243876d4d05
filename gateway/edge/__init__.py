"""Edge: the public listener, up to the pipeline's door.

It owns connections and HTTP/1.1 (``server``: parsing, framing, per-phase timers,
the connection cap, parse-error answers), the request and reply the pipeline
sees (``http``), and what is checked or cleaned before any route is chosen: the
Host (``hosts``), paths never forwarded (``blocked``), the canonical path
(``canonical``), header hygiene both ways (``headers``), the cookies the gateway
reads (``cookies``).
"""
