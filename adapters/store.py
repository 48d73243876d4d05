"""The shared session record in Redis: key names, fields and the write script.

One hash per session, hash-tagged on the session id so that Redis Cluster
keeps everything of a session in one slot::

    {prefix}:{<sid>}   doc   shared document (JSON, see ``adapters.session``)
                       v     version, bumped by every write of either side
                       lv    the ``v`` the legacy node is known to hold
                             (-1: legacy holds something else, push before use)
                       node  legacy node id holding the session ('' = none)
                       lrev  last legacy revision pushed or pulled on ``node``
                       base  document as of what legacy holds (3-way merge base)
                       t     unix time of the last write (TTL refresh)

Every write goes through ``WRITE_SCRIPT``: a compare-and-set on ``v`` that
sets the TTL in the same atomic step, so no record is ever left without one
and no update is silently lost. This module is data; the gateway and the new
services each run it with their own Redis client.
"""

from __future__ import annotations

import re
from typing import Final

FIELDS: Final = ("doc", "v", "lv", "node", "lrev", "base", "t")

_SID_RE: Final = re.compile(r"[A-Za-z0-9_-]{16,128}")


def valid_session_id(sid: str) -> bool:
    """Session ids are URL-safe tokens; anything else never becomes a Redis key."""
    return _SID_RE.fullmatch(sid) is not None


def session_key(prefix: str, sid: str) -> str:
    return f"{prefix}:{{{sid}}}"


WRITE_SCRIPT: Final = """
-- KEYS[1] session record
-- ARGV[1] expected v ('0' = record must not exist yet)
-- ARGV[2] ttl seconds
-- ARGV[3] '1' = bump v
-- ARGV[4] '1' = set lv to the resulting v
-- ARGV[5..] field, value pairs (later pairs win)
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if cur ~= tonumber(ARGV[1]) then
  return {0, cur}
end
local v = cur
if ARGV[3] == '1' then v = cur + 1 end
local args = {'v', v}
if ARGV[4] == '1' then
  args[#args + 1] = 'lv'
  args[#args + 1] = v
end
for i = 5, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(args))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {1, v}
"""
"""Returns ``{1, new_v}`` on success, ``{0, current_v}`` when ``v`` moved."""


def write_args(
    expected_v: int,
    ttl_s: int,
    *,
    bump: bool,
    set_lv: bool,
    fields: dict[str, str | int],
) -> list[str | int]:
    """ARGV for ``WRITE_SCRIPT``."""
    args: list[str | int] = [expected_v, ttl_s, "1" if bump else "0", "1" if set_lv else "0"]
    for name, value in fields.items():
        if name not in FIELDS or name == "v":
            raise ValueError(f"not a writable session field: {name}")
        args += [name, value]
    return args
