"""Upstream: everything between the gateway and its backends.

It owns the wire to a backend (``client``: the pooled HTTP/1.1 client every
byte to a legacy node or new instance goes through). The pipeline reaches a
backend only through the ``gateway.forward.Upstream`` port.
"""
