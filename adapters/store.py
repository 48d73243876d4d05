"""The shared session record in Redis: key names, fields and the scripts.

One hash per session, hash-tagged on the session id so that Redis Cluster
keeps everything of a session in one slot::

    {prefix}:{<sid>}   doc   shared document (JSON, see ``adapters.document``);
                             absent: no session (never was, or dropped)
                       v     version, bumped by every document write of either
                             side; never reset, not even by a drop (no ABA)
                       lv    the ``v`` the legacy node is known to hold
                             (-1: legacy holds something else, push before use)
                       node  legacy node holding the session, ``id@boot`` ('' = none)
                       lrev  that node's revision of the session as last pulled or pushed
                       base  document as the node holds it at ``lrev`` (3-way merge base)
                       pi    push intent: what the gateway is about to import into a
                             node (JSON ``{"f", "v", "node", "doc"}``), so a later sync
                             can tell an import that landed from a change legacy made
                       ops   ids of the last writes applied by new services (dedupe)
                       t     unix time of the last write
                       f     fence counter: every sync lock taken gets the next one
                       lk    fence of the sync lock's holder (0 = free)
                       le    lease expiry of that lock, Redis server time in ms
                       lo    owner token of the holder (to take back an orphaned lock)

Scripts (the whole state machine is in docs/consistency.md):

- ``WRITE_SCRIPT``: a compare-and-set on ``v`` that sets the TTL in the same
  step; with an op id, a write already applied is reported, never applied twice.
  New services write only through it.
- ``SYNC_ACQUIRE`` / ``SYNC_WRITE`` / ``SYNC_RELEASE``: the gateway's sync lock,
  fenced. Every write the gateway makes under the lock names its fence and
  lands only while that fence holds an unexpired lease (Redis's own clock), so
  a holder that outlived its lease -- a stalled process, a command that sat in
  a hung Redis and ran after it woke -- can write nothing.

This module is data; the gateway and the new services each run it with their
own Redis client.
"""

from __future__ import annotations

import re
from typing import Final

FIELDS: Final = ("doc", "v", "lv", "node", "lrev", "base", "t", "pi")
"""What a reader of the record gets (``SessionStore.read`` and ``SYNC_ACQUIRE``)."""

SYNC_FIELDS: Final = frozenset({"lv", "node", "lrev", "base", "pi"})
"""Fields only the gateway writes, only under the sync lock."""

WRITABLE: Final = frozenset({"doc", "t", *SYNC_FIELDS})

OPS_KEPT: Final = 32
"""How many op ids of new-service writes the record remembers."""

_SID_RE: Final = re.compile(r"[A-Za-z0-9_-]{16,128}")
_OP_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def valid_session_id(sid: str) -> bool:
    """Session ids are URL-safe tokens; anything else never becomes a Redis key."""
    return _SID_RE.fullmatch(sid) is not None


def session_key(prefix: str, sid: str) -> str:
    return f"{prefix}:{{{sid}}}"


_NOW: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

WRITE_SCRIPT: Final = """
-- KEYS[1] session record
-- ARGV[1] expected v ('0' = no document may exist yet)
-- ARGV[2] ttl seconds
-- ARGV[3] '1' = bump v
-- ARGV[4] '1' = set lv to the resulting v
-- ARGV[5] op id ('' = none): a write with an id already applied is not applied again
-- ARGV[6..] field, value pairs (later pairs win)
local h = redis.call('HMGET', KEYS[1], 'v', 'ops')
local cur = tonumber(h[1] or '0')
local ops = h[2] or ''
if ARGV[5] ~= '' and string.find(' ' .. ops .. ' ', ' ' .. ARGV[5] .. ' ', 1, true) then
  return {2, cur}
end
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
if ARGV[5] ~= '' then
  local kept = {}
  for id in string.gmatch(ops, '%S+') do kept[#kept + 1] = id end
  kept[#kept + 1] = ARGV[5]
  local first = math.max(1, #kept - """ + str(OPS_KEPT - 1) + """)
  args[#args + 1] = 'ops'
  args[#args + 1] = table.concat(kept, ' ', first, #kept)
end
for i = 6, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(args))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {1, v}
"""
"""``{1, new_v}`` written; ``{0, current_v}`` when ``v`` moved; ``{2, current_v}``:
the op id was applied before (by an earlier attempt whose answer was lost)."""

SYNC_ACQUIRE: Final = """
-- KEYS[1] session record
-- ARGV[1] lease ms; ARGV[2] ttl seconds; ARGV[3] owner token
-- ARGV[4] an owner token of ours whose lock we may take back ('' = none)
""" + _NOW + """
local h = redis.call('HMGET', KEYS[1], 'lk', 'le', 'lo', 'f')
local lk, le = tonumber(h[1] or '0'), tonumber(h[2] or '0')
if lk ~= 0 and le > now and (ARGV[4] == '' or h[3] ~= ARGV[4]) then
  return {0, le - now}
end
local f = math.max(tonumber(h[4] or '0') + 1, now)
redis.call('HSET', KEYS[1], 'f', f, 'lk', f, 'le', now + tonumber(ARGV[1]), 'lo', ARGV[3])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
local rec = redis.call('HMGET', KEYS[1], 'doc', 'v', 'lv', 'node', 'lrev', 'base', 't', 'pi')
return {f, 0, rec[1], rec[2], rec[3], rec[4], rec[5], rec[6], rec[7], rec[8]}
"""
"""``{fence, 0, <FIELDS...>}`` taken (with the record as it stands); ``{0, ms left}`` busy."""

SYNC_WRITE: Final = """
-- KEYS[1] session record
-- ARGV[1] fence; ARGV[2] expected v ('' = any); ARGV[3] ttl seconds
-- ARGV[4] '1' = bump v; ARGV[5] '1' = set lv to the resulting v
-- ARGV[6] '1' = release the lock; ARGV[7] '1' = drop the session (keep v, f)
-- ARGV[8..] field, value pairs
""" + _NOW + """
local h = redis.call('HMGET', KEYS[1], 'lk', 'le', 'v')
if tonumber(h[1] or '0') ~= tonumber(ARGV[1]) or tonumber(h[2] or '0') <= now then
  return {-1, 0}
end
local cur = tonumber(h[3] or '0')
if ARGV[2] ~= '' and cur ~= tonumber(ARGV[2]) then
  return {0, cur}
end
local args = {}
if ARGV[7] == '1' then
  redis.call('HDEL', KEYS[1], 'doc', 'lv', 'node', 'lrev', 'base', 'pi', 'ops')
  args = {'v', cur + 1, 't', math.floor(now / 1000)}
else
  local v = cur
  if ARGV[4] == '1' then v = cur + 1 end
  args = {'v', v}
  if ARGV[5] == '1' then
    args[#args + 1] = 'lv'
    args[#args + 1] = v
  end
  for i = 8, #ARGV do args[#args + 1] = ARGV[i] end
end
if ARGV[6] == '1' then
  args[#args + 1] = 'lk'
  args[#args + 1] = 0
end
redis.call('HSET', KEYS[1], unpack(args))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, tonumber(args[2])}
"""
"""``{1, v}`` written; ``{0, current_v}`` when ``v`` moved; ``{-1, 0}``: the fence no
longer holds the lock (it was released, taken over or its lease ran out)."""

SYNC_RELEASE: Final = """
-- KEYS[1] session record; ARGV[1] fence ('0' = by owner only); ARGV[2] owner token ('' = none)
local h = redis.call('HMGET', KEYS[1], 'lk', 'lo')
local lk = tonumber(h[1] or '0')
if lk ~= 0 and (lk == tonumber(ARGV[1]) or (ARGV[2] ~= '' and h[2] == ARGV[2])) then
  redis.call('HSET', KEYS[1], 'lk', 0)
  return 1
end
return 0
"""


def valid_op_id(op: str) -> bool:
    return _OP_RE.fullmatch(op) is not None


def write_args(
    expected_v: int,
    ttl_s: int,
    *,
    bump: bool,
    set_lv: bool,
    fields: dict[str, str | int],
    op: str = "",
) -> list[str | int]:
    """ARGV for ``WRITE_SCRIPT``."""
    if op and not valid_op_id(op):
        raise ValueError(f"not an op id: {op!r}")
    args: list[str | int] = [expected_v, ttl_s, "1" if bump else "0", "1" if set_lv else "0", op]
    return args + _pairs(fields)


def sync_write_args(
    fence: int,
    expected_v: int | None,
    ttl_s: int,
    *,
    bump: bool = False,
    set_lv: bool = False,
    release: bool = False,
    drop: bool = False,
    fields: dict[str, str | int] | None = None,
) -> list[str | int]:
    """ARGV for ``SYNC_WRITE``."""
    args: list[str | int] = [fence, "" if expected_v is None else expected_v, ttl_s,
                             "1" if bump else "0", "1" if set_lv else "0",
                             "1" if release else "0", "1" if drop else "0"]
    return args + _pairs(fields or {})


def _pairs(fields: dict[str, str | int]) -> list[str | int]:
    out: list[str | int] = []
    for name, value in fields.items():
        if name not in WRITABLE:
            raise ValueError(f"not a writable session field: {name}")
        out += [name, value]
    return out
