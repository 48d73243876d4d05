"""Config reload: re-read config.yaml, validate it whole, apply it live or refuse.

A reload (SIGHUP, or ``POST /api/reload`` on the admin listener) ends in one
of four outcomes, each logged once with its reason:

    invalid        the file does not load (the error names the key path);
                   nothing changes, the running config keeps serving
    needs_restart  it is valid but changes something a running process
                   cannot swap (``RESTART_ONLY`` below, or a route's flag
                   definition); nothing changes, the keys are named
    unchanged      the file says what is already running
    applied        routes, upstream lists, timeouts, limits, fallback,
                   breaker, retry-budget and shadow rules, health checks,
                   trusted proxies, host lists, blocked paths and drain time
                   are swapped in between two requests; requests in flight
                   finish on the old objects

All or nothing: a reload is never half-applied, so "reloaded" always means
the process now runs exactly what the file says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.observe import log
from gateway.settings import Config, ConfigError

_log = log.get("reload")

RESTART_ONLY: tuple[tuple[str, str], ...] = (
    ("gateway.listen", "the proxy listener is bound at start"),
    ("gateway.admin_listen", "the admin listener is bound at start"),
    ("gateway.admin_token", "admin tokens are read at start"),
    ("gateway.admin_tokens", "admin tokens are read at start"),
    ("gateway.limits.max_url_bytes", "the HTTP parser is built at start"),
    ("gateway.limits.max_header_bytes", "the HTTP parser is built at start"),
    ("gateway.limits.max_headers", "the HTTP parser is built at start"),
    ("gateway.shadow_concurrency", "the shadow slot pool is sized at start"),
    ("gateway.log_level", "loggers take their level at start"),
    ("gateway.shutdown.timeout_s", "the listeners take it at start"),
    ("gateway.session_sync", "the session bridge takes its budget and lock lease at start"),
    ("session", "the session profile is the bridge's from start; change it on every gateway "
                "together, by restarting them"),
    ("redis", "the Redis client connects at start"),
    ("database", "the ledger database connects at start"),
    ("tokens", "token settings are read at start (the signing key itself rotates by "
               "replacing its file, gateway.session.signing)"),
    ("flags", "the flag provider is built at start"),
    ("legacy.internal_token", "the internal token is read at start"),
)
"""Key paths (and everything under them) a running process cannot change, and why."""


class Status(StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    INVALID = "invalid"
    NEEDS_RESTART = "needs_restart"


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str = ""
    changed: tuple[str, ...] = ()
    """Key paths that differ from the running config."""
    refused: tuple[str, ...] = field(default=())
    """``key: why`` for each change that needs a restart."""

    @property
    def ok(self) -> bool:
        return self.status in (Status.APPLIED, Status.UNCHANGED)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "detail": self.detail,
                "changed": list(self.changed), "needs_restart": list(self.refused)}


def changed_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """Key paths where two ``model_dump()`` documents differ (a list that changed
    length is reported as a whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old or key not in new:
                out.append(sub)
            else:
                out += changed_paths(old[key], new[key], sub)
        return out
    if isinstance(old, list | tuple) and isinstance(new, list | tuple) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out += changed_paths(a, b, f"{path}[{i}]")
        return out
    return [] if old == new else [path or "(top level)"]


def _flag_definitions(cfg: Config) -> dict[str, tuple[Any, ...]]:
    return {r.name: (r.stage, r.percent, r.group)
            for r in cfg.routes if not r.legacy_only}


def restart_needed(old: Config, new: Config, changed: list[str]) -> list[str]:
    """``key: why`` for every change in ``changed`` a running process cannot apply."""
    out = []
    for path in changed:
        for prefix, why in RESTART_ONLY:
            if path == prefix or path.startswith((prefix + ".", prefix + "[")):
                out.append(f"{path}: {why}")
                break
    before, after = _flag_definitions(old), _flag_definitions(new)
    index = {r.name: i for i, r in enumerate(new.routes)}
    for name in sorted(set(before) | set(after)):
        if before.get(name) == after.get(name):
            continue
        where = f"routes[{index[name]}] ({name})" if name in index else f"routes ({name})"
        if name not in after:
            what = "a route with a flag was removed (or made legacy_only)"
        elif name not in before:
            what = "a new route with a flag (legacy_only routes can be added live)"
        else:
            what = ("its flag definition (stage, percent, group) changed; move a flag "
                    "with `strangler flags set`")
        out.append(f"{where}: {what}; the flag provider loads flags at start")
    return out


class Reloader:
    """Reads the config through ``load`` and hands a good one to ``apply``.

    ``load`` is the same loader the process started with (file plus command-line
    overrides), so a reload sees exactly what a restart would. ``notify`` is
    called after an admin-API reload that applied, to tell sibling workers.
    """

    def __init__(self, current: Callable[[], Config], load: Callable[[], Config],
                 apply: Callable[[Config], None],
                 notify: Callable[[], None] | None = None) -> None:
        self._current = current
        self._load = load
        self._apply = apply
        self.notify = notify
        self._lock = asyncio.Lock()

    async def reload(self, trigger: str) -> Outcome:
        async with self._lock:
            outcome = self._reload()
        fields: dict[str, Any] = {"trigger": trigger, "status": outcome.status.value}
        if outcome.status is Status.APPLIED:
            _log.info("config_reloaded", changed=list(outcome.changed), **fields)
        elif outcome.status is Status.UNCHANGED:
            _log.info("config_unchanged", **fields)
        else:
            _log.warning("config_reload_refused", reason=outcome.detail,
                         needs_restart=list(outcome.refused), **fields)
        return outcome

    def _reload(self) -> Outcome:
        try:
            new = self._load()
        except ConfigError as exc:
            return Outcome(Status.INVALID, f"{exc}; the running config keeps serving")
        old = self._current()
        changed = changed_paths(old.model_dump(mode="json"), new.model_dump(mode="json"))
        if not changed:
            return Outcome(Status.UNCHANGED, "the file matches the running config")
        refused = restart_needed(old, new, changed)
        if refused:
            return Outcome(Status.NEEDS_RESTART,
                           "these changes need a restart; nothing was applied, the running "
                           "config keeps serving", tuple(changed), tuple(refused))
        try:
            self._apply(new)
        except ConfigError as exc:
            return Outcome(Status.INVALID, f"{exc}; the running config keeps serving",
                           tuple(changed))
        return Outcome(Status.APPLIED, "applied live", tuple(changed))
