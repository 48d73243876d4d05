"""Observe: what the gateway tells about itself.

JSON log lines (``log``), Prometheus metrics (``metrics``), W3C trace context
(``tracing``) and the dashboard's live figures (``live_stats``).
"""
