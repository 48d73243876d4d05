"""Edge: the public listener, up to the pipeline's door.

It owns connections and HTTP/1.1 (``server``: parsing, framing, per-phase
timers, the connection cap, parse-error answers) and the request and reply the
pipeline sees (``http``: ``Incoming``, ``Reply``, problem+json).
"""
