"""A gateway process freezes its start-up heap (``gateway.runtime.process``); what a
reload replaces must still be collected (``gateway.runtime.app._refreeze``)."""

from __future__ import annotations

import gc
import weakref

from gateway.runtime.app import _refreeze


class _Part:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_a_part_frozen_at_start_and_replaced_by_a_reload_is_collected() -> None:
    part = _Part()
    gone = weakref.ref(part)
    gc.collect()
    gc.freeze()
    try:
        del part  # the reload swapped it out
        gc.collect()
        assert gone() is not None, "frozen: a plain collection cannot see it"
        _refreeze()
        assert gone() is None, "the reload's old parts were never freed"
    finally:
        gc.unfreeze()
