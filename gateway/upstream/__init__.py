"""Upstream: everything between the gateway and its backends.

It owns the port the pipeline talks to (``forward``: ``Upstream``, ``Outgoing``,
``UpstreamResult``), the wire (``client``: the pooled HTTP/1.1 client every byte
to a backend goes through), the pools with health and stickiness (``pools``),
and the deadlines of every exchange (``deadlines``).
"""
