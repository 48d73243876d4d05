"""What a service is told about its deployment: the ``session:`` profile and the settings
the SDK needs, from a dict or from the deployment's config.yaml.

A service learns the session's shape from the operator, never from the record
(docs/protocol.md section 5): the same config.yaml the gateway reads, or the
``session:`` block copied into the service's own settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from adapters.profile import SessionProfile, build

from .sessions import DEFAULT_CAS_ATTEMPTS, DEFAULT_TTL_S, DEFAULT_WRITE_BUDGET_S

DEFAULT_ISSUER = "strangler-gateway"


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file and key."""


def load_profile(source: Mapping[str, Any] | Path | str) -> SessionProfile:
    """The profile of a ``session:`` block given as a dict, or read from a config.yaml."""
    block = read_config(source).get("session") if isinstance(source, Path | str) else source
    if not isinstance(block, Mapping):
        raise ConfigError(f"{source}: no 'session:' block")
    try:
        return build(block)
    except ValidationError as exc:
        raise ConfigError(f"session: {exc}") from None


def read_config(path: Path | str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a YAML mapping")
    return data


@dataclass(frozen=True, slots=True)
class SdkSettings:
    """Everything the SDK needs of a deployment, with the defaults config.yaml has."""

    profile: SessionProfile | None = None
    issuer: str = DEFAULT_ISSUER
    jwks_url: str | None = None
    """The gateway's ``/.well-known/jwks.json`` (admin listener)."""
    jwks_file: Path | None = None
    """``tokens.jwks_file``: the keys at start, before any gateway answers."""
    key_prefix: str = "strangler"
    session_ttl_s: int = DEFAULT_TTL_S
    write_budget_s: float = DEFAULT_WRITE_BUDGET_S
    cas_attempts: int = DEFAULT_CAS_ATTEMPTS
    leeway_s: int = 5
    token_cache_size: int = 10_000
    jwks_refresh_s: float = 60.0
    guests: bool = False
    """Serve guest tokens (the route allows guests)."""
    session_key: bytes = field(default=b"", repr=False)
    """Only to create sessions (a login on new)."""

    def __post_init__(self) -> None:
        if self.jwks_url is None and self.jwks_file is None:
            raise ConfigError("tokens: give a JWKS URL, a JWKS file, or both")
        if self.session_ttl_s <= 0:
            raise ConfigError("session_ttl_s: must be > 0")

    @classmethod
    def from_config(cls, path: Path | str, **overrides: Any) -> SdkSettings:
        """Settings from the deployment's config.yaml (``session``, ``redis.key_prefix``,
        ``redis.session_ttl_s``, ``tokens.issuer``, ``tokens.jwks_file``); ``overrides``
        win (for example ``jwks_url``, which config.yaml does not hold)."""
        data = read_config(path)
        redis = data.get("redis") or {}
        tokens = data.get("tokens") or {}
        values: dict[str, Any] = {
            "profile": load_profile(data.get("session") or {}),
            "key_prefix": redis.get("key_prefix", "strangler"),
            "session_ttl_s": redis.get("session_ttl_s", DEFAULT_TTL_S),
            "issuer": tokens.get("issuer", DEFAULT_ISSUER),
        }
        if tokens.get("jwks_file"):
            values["jwks_file"] = Path(tokens["jwks_file"])
        values.update(overrides)
        return cls(**values)
