"""Which strings can be a session id: what a cookie value can be (RFC 6265 cookie-octets,
plus ``,``, minus ``{`` and ``}``: docs/protocol.md section 4), 1 to 256 characters.

The hook's path segment is one (percent-decoded by the WSGI server, so ``%2F``
arrives as ``/``: the converter takes any text, slashes included), and so must a
cookie be before a response header echoes it.
"""

from __future__ import annotations

import re
from typing import Final

from werkzeug.routing import BaseConverter

MAX_SID_LENGTH: Final = 256
_SID = re.compile(r"[\x21\x23-\x3A\x3C-\x5B\x5D-\x7A\x7C\x7E]{1," + str(MAX_SID_LENGTH) + "}")


def valid_sid(value: str | None) -> bool:
    return value is not None and _SID.fullmatch(value) is not None


class AnySidConverter(BaseConverter):
    """A path converter for one decoded id: any text, ``/`` and a leading ``/`` included
    (werkzeug's ``path`` refuses a leading one). ``hook`` checks it with ``valid_sid``."""

    regex = ".+"
    part_isolating = False
