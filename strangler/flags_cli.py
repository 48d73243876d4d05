"""``strangler flags``: the same flag store the gateways follow, from a terminal.

Local provider: a change is written to Redis and announced on the flags
channel, so every running gateway applies it within a second -- the same path
as the admin API. Unleash provider (``flags.provider: unleash``): a change is
written through the Unleash Admin API with the admin token, and every gateway
follows it within its refresh interval (plus Unleash's own ~1 s revision tick).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from redis.exceptions import RedisClusterException, RedisError

from flags import FlagError, FlagState
from flags.ledger import Ledger
from flags.model import parse_stage
from flags.pins import Pins
from flags.service import FlagService, Outcome
from flags.store import FlagStore
from flags.text import check, inert
from flags.unleash_admin import UnleashAdmin
from flags.unleash_flags import UnleashFlags
from gateway.runtime.startup import flag_defaults, flag_groups
from gateway.session.redis_client import describe, make_redis
from gateway.settings import Config, ConfigError, RedisSection
from strangler import runtime


def run(cfg: Config, args: argparse.Namespace, actor: str) -> int:
    redis = runtime.redis_section(cfg.redis, args.redis_url)
    try:
        if getattr(args, "reason", None) is not None:  # refused before anything is reached
            check("reason", args.reason)
        if args.flags_command == "history":  # the ledger is SQL: no Redis needed
            return asyncio.run(_history(cfg, args.route, args.limit))
        if redis is None and cfg.flags.provider != "unleash":
            raise ConfigError("redis: not set and no demo running; give --redis-url")
        return asyncio.run(_run(cfg, args, redis, actor))
    except FlagError as exc:
        print(f"strangler flags: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # our stdout went away (`| head`): strangler.cli's business
        raise
    except (RedisError, RedisClusterException, OSError) as exc:
        where = describe(redis) if redis else "(none)"
        print(f"strangler flags: cannot reach Redis at {where}: {exc}", file=sys.stderr)
        return 1


async def _run(cfg: Config, args: argparse.Namespace, redis: RedisSection | None,
               actor: str) -> int:
    # Pins live in Redis whichever provider holds the flags: with Unleash and no
    # Redis (--redis-url, the redis section or a running demo) there are none to clear.
    client = make_redis(redis, timeout_s=2) if redis else None
    legacy_only = [r.name for r in cfg.routes if r.legacy_only]
    unleash = _unleash_flags(cfg) if cfg.flags.provider == "unleash" else None
    store = None if unleash or client is None else FlagStore(
        client, flag_defaults(cfg), prefix=cfg.redis.key_prefix,
        kill_default=cfg.flags.kill_switch, groups=flag_groups(cfg))
    flags = unleash or store
    assert flags is not None
    ledger = Ledger(cfg.database.ledger_url or cfg.database.url)
    service = FlagService(flags, ledger, Pins(client, cfg.redis.key_prefix) if client else None)
    try:
        cmd = args.flags_command
        if cmd == "set":
            if args.route in legacy_only:
                raise FlagError(f"route {args.route!r} is legacy_only: it has no new side")
            outcome = await service.flip(args.route, parse_stage(args.stage), args.percent,
                                         actor=actor, source="cli", reason=args.reason)
            _print_outcome(outcome)
        elif cmd == "kill":
            outcome = await service.kill(args.state == "on", actor=actor, source="cli",
                                         reason=args.reason)
            _print_outcome(outcome)
        elif cmd == "unpin":
            count = await service.unpin(args.route, actor=actor, source="cli")
            print(f"{args.route}: {count} pinned session(s) released to their canary bucket")
        elif cmd == "reset":
            if store is None:
                raise FlagError("reset is for the local provider: with Unleash, the server "
                                "holds every stage and config.yaml's are not used")
            version = await store.reset()
            print(f"runtime overrides dropped; config.yaml stages apply (flag version {version})")
        _print_state(await flags.load(), legacy_only)
        return 0
    finally:
        await ledger.close()
        if unleash:
            await unleash.admin.close()
        if client is not None:
            await client.aclose()


def _unleash_flags(cfg: Config) -> UnleashFlags:
    u = cfg.flags.unleash
    assert u is not None  # settings refuse provider: unleash without this section
    token = u.admin_token.read()
    if not token:
        where = " or ".join(w for w in (u.admin_token.env and f"${u.admin_token.env}",
                                        u.admin_token.file and str(u.admin_token.file)) if w)
        raise ConfigError(f"flags.unleash.admin_token: no admin API token in {where or '(none)'}")
    admin = UnleashAdmin(u.url, token, project=u.project, environment=u.environment)
    return UnleashFlags(admin, flag_defaults(cfg), flag_groups(cfg))


def _print_outcome(outcome: Outcome) -> None:
    change = outcome.change
    if change.route is None:
        print(f"kill switch: {'on' if change.after else 'off'} (flag version {change.version})")
    else:
        moved = [r for r in change.moved if r != change.route]
        also = f"; moved with it (same group): {', '.join(moved)}" if moved else ""
        print(f"{change.route}: {_fmt(change.before)} -> {_fmt(change.after)} "
              f"(flag version {change.version}{also})")
    for route, count in outcome.pins_cleared.items():
        if count:
            print(f"{route}: {count} pin(s) cleared (back to legacy)")
    if outcome.ledger_error:
        print(f"WARNING: applied, but not recorded in the ledger: {outcome.ledger_error}",
              file=sys.stderr)


async def _history(cfg: Config, route: str | None, limit: int) -> int:
    known = {r.name for r in cfg.routes}
    if route is not None and route not in known:
        raise FlagError(f"unknown route {route!r} (known: {', '.join(sorted(known))})")
    ledger = Ledger(cfg.database.ledger_url or cfg.database.url)
    try:
        entries = await ledger.history(route, limit)
    finally:
        await ledger.close()
    if not entries:
        print("no stage changes recorded" + (f" for {route}" if route else ""))
    for entry in entries:
        print(entry.describe())  # one line each, inert, whatever the row holds
    return 0


def _fmt(flag: object) -> str:
    stage = getattr(flag, "stage", None)
    if stage is None:
        return str(flag)
    return f"{stage.value} {flag.percent}%" if stage.value == "canary" else stage.value  # type: ignore[attr-defined]


def _print_state(state: FlagState, legacy_only: list[str]) -> None:
    kill = "ON - every route is served by legacy" if state.kill_switch else "off"
    print(f"\nkill switch: {kill}    flag version: {state.version}")
    print(f"{'route':<12} {'stage':<10} {'% new':>5}  last change")
    for name, flag in state.routes.items():
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(flag.updated_at)) \
            if flag.updated_at else ""
        why = f" ({flag.reason})" if flag.reason else ""
        print(inert(f"{name:<12} {flag.stage.value:<10} {flag.percent:>5}  "
                    f"{flag.updated_by} {when}{why}".rstrip()))
    for name in legacy_only:
        print(f"{name:<12} {'legacy':<10} {0:>5}  legacy-only route")
