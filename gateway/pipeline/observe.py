"""Observe: every answered request, once: counted, timed, and one log line
(``backend_decided``) with its route, backend, reason, upstream, status and trace."""

from __future__ import annotations

from gateway.edge.http import Reply
from gateway.observe import log, tracing
from gateway.observe.metrics import Metrics
from gateway.pipeline.exchange import Exchange, Served


class Observe:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def __call__(self, ex: Exchange, served: Served, reply: Reply, elapsed: float) -> None:
        backend = served.backend.value
        self._metrics.observe_request(ex.route.name, backend, reply.status, elapsed,
                                      served.reason)
        assert ex.headers is not None
        log.request_line(ex.rid, route=ex.route.name, backend=backend, reason=served.reason,
                         upstream=served.result.upstream_id, status=reply.status,
                         ms=round(elapsed * 1000, 2),
                         trace_id=tracing.trace_id(ex.headers["traceparent"]))
