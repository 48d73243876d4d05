"""What the gateway reads from config.yaml before it builds anything: its secrets and
its flag provider (also used by the ``strangler flags`` commands)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from adapters.handles import HandleKeyError, check_key
from flags.local import LocalProvider
from flags.model import RouteFlag
from flags.provider import Provider
from flags.unleash_server import UnleashServerProvider
from gateway.session.redis_client import RedisClient
from gateway.settings import Config, ConfigError


@dataclass(frozen=True)
class Secrets:
    internal_token: str
    admin_tokens: dict[str, str]
    """token name -> token; ``admin`` is gateway.admin_token."""
    session_key: bytes = b""
    """Derives session handles (``adapters.handles``)."""


def read_secrets(cfg: Config) -> Secrets:
    internal = cfg.legacy.internal_token.read()
    if not internal:
        raise ConfigError("legacy.internal_token: no secret found in "
                          f"${cfg.legacy.internal_token.env} or {cfg.legacy.internal_token.file}")
    tokens = {}
    shared = cfg.gateway.admin_token.read()
    if shared:
        tokens["admin"] = shared
    for i, named in enumerate(cfg.gateway.admin_tokens):
        value = named.read()
        if not value:
            raise ConfigError(f"gateway.admin_tokens[{i}]: no secret found for {named.name!r} "
                              f"in ${named.env} or {named.file}")
        tokens[named.name] = value
    key = cfg.tokens.session_key.read()
    if not key:
        raise ConfigError("tokens.session_key: no secret found in "
                          f"${cfg.tokens.session_key.env} or {cfg.tokens.session_key.file}")
    try:
        check_key(key.encode())
    except HandleKeyError as exc:
        raise ConfigError(f"tokens.session_key: {exc}") from None
    return Secrets(internal, tokens, key.encode())


def flag_defaults(cfg: Config) -> dict[str, RouteFlag]:
    return {r.name: RouteFlag(r.stage, r.percent) for r in cfg.routes if not r.legacy_only}


def flag_groups(cfg: Config) -> dict[str, str]:
    """route -> group, for the routes that must move together."""
    return {r.name: r.group for r in cfg.routes if r.group is not None}


def make_provider(cfg: Config, redis: RedisClient) -> Provider:
    """The flag provider config.yaml names: local (config + Redis) or an Unleash server."""
    flags = cfg.flags
    if flags.provider == "unleash" and flags.unleash is not None:
        u = flags.unleash
        token = u.client_token.read()
        if not token:
            where = " or ".join(w for w in (u.client_token.env and f"${u.client_token.env}",
                                            u.client_token.file and str(u.client_token.file))
                                if w)
            raise ConfigError(f"flags.unleash.client_token: no secret found in {where}")
        return UnleashServerProvider(
            url=u.url, client_token=token, admin_token=u.admin_token.read(),
            routes=flag_defaults(cfg), groups=flag_groups(cfg), app_name=flags.app_name,
            environment=u.environment, project=u.project,
            instance_id=f"{socket.gethostname()}:{cfg.gateway.listen.port}:{os.getpid()}",
            refresh_interval=u.refresh_interval_s, metrics_interval=u.metrics_interval_s,
            snapshot_file=u.snapshot_file)
    return LocalProvider(
        redis, flag_defaults(cfg), prefix=cfg.redis.key_prefix,
        kill_default=flags.kill_switch, app_name=flags.app_name,
        poll_interval=flags.poll_interval_ms / 1000, groups=flag_groups(cfg))
