"""W3C Trace Context (``traceparent``, ``tracestate``) through the gateway.

The gateway is one hop of the caller's trace: it keeps the trace id and the
trace flags, and names itself as the parent of whatever the backends do (a new
parent id per client request, the same for every attempt of that request, so a
fallback's legacy call and the failed new call are siblings). A missing or
malformed ``traceparent`` (two of them, version ``ff``, an all-zero id, upper
case hex) starts a new, unsampled trace, and the caller's ``tracestate`` goes
with it: it describes the broken trace, not the new one.

https://www.w3.org/TR/trace-context/#traceparent-header
"""

from __future__ import annotations

import random
import re

_PARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def child(incoming: list[str]) -> tuple[str, bool]:
    """The ``traceparent`` to send to a backend for a request that came with
    ``incoming`` (all its ``traceparent`` lines), and whether its ``tracestate``
    may travel along."""
    if len(incoming) == 1:
        m = _PARENT.fullmatch(incoming[0].strip(" \t"))
        if m is not None:
            version, trace, parent, flags, rest = m.groups()
            if (version != "ff" and (version != "00" or rest is None)
                    and trace != _ZERO_TRACE and parent != _ZERO_SPAN):
                # A later version is read as far as version 00 goes and sent on as 00.
                return f"00-{trace}-{_span()}-{flags}", True
    return f"00-{random.getrandbits(128) or 1:032x}-{_span()}-00", False


def _span() -> str:
    """A parent id: random (W3C asks for uniqueness, not secrecy; the process's PRNG is
    reseeded in every forked worker), never all zeros."""
    return f"{random.getrandbits(64) or 1:016x}"


def trace_id(traceparent: str) -> str:
    """The trace id of a ``traceparent`` this module made."""
    return traceparent[3:35]
