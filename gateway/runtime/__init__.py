"""Runtime: a gateway process from start to exit.

The composition root (``compose``), one process's listeners, start, reload and
stop (``app``), config reload (``reload``, and its admin endpoint ``reload_api``),
secrets read at start (``startup``), signals (``process``) and ``--workers``
(``workers``).
"""
