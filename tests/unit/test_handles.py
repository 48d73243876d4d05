"""adapters.handles: a session named without its cookie."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from adapters.handles import HandleKeyError, check_key, session_handle, valid_handle

KEY = b"k" * 32


def test_the_handle_is_the_documented_hmac() -> None:
    """docs/protocol.md states it in words; another language must get the same bytes."""
    mac = hmac.new(KEY, b"abc", hashlib.sha256).digest()
    assert session_handle(KEY, "abc") == base64.urlsafe_b64encode(mac).decode().rstrip("=")
    assert session_handle(KEY, "Zm9v") == "QurXjgqzbBcI2TOepRpTihIA-PzV-ztDyXVpDrEKumk"


def test_handles_differ_by_id_and_by_key_and_never_contain_the_id() -> None:
    a, b = session_handle(KEY, "x" * 43), session_handle(KEY, "y" * 43)
    assert a != b and valid_handle(a) and "x" * 8 not in a
    assert session_handle(b"j" * 32, "x" * 43) != a


def test_a_short_key_is_refused() -> None:
    with pytest.raises(HandleKeyError):
        check_key(b"short")
    assert check_key(KEY) == KEY
