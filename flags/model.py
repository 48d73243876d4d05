"""Stages, route flags and the flag state: plain immutable values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class FlagError(Exception):
    """A flag change that cannot be applied; the message says why."""


class UnknownRoute(FlagError):
    """The route is not declared in the configuration."""


class Stage(StrEnum):
    LEGACY = "legacy"
    SHADOW = "shadow"
    CANARY = "canary"
    NEW = "new"
    COMPLETE = "complete"

    @property
    def serves_new(self) -> bool:
        """True when (some) users are served by the new services at this stage."""
        return self in (Stage.CANARY, Stage.NEW, Stage.COMPLETE)


@dataclass(frozen=True, slots=True)
class RouteFlag:
    """A route's stage. ``percent`` is the share of sessions on new (canary only).

    legacy and shadow are 0%, new and complete 100%: the percentage is derived,
    never contradictory.
    """

    stage: Stage
    percent: int = 0
    updated_by: str = "config"
    updated_at: float = 0.0
    reason: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.percent, int) or isinstance(self.percent, bool):
            raise FlagError(f"percent must be an integer, got {self.percent!r}")
        if not 0 <= self.percent <= 100:
            raise FlagError(f"percent must be within 0..100, got {self.percent}")
        fixed = {Stage.LEGACY: 0, Stage.SHADOW: 0, Stage.NEW: 100, Stage.COMPLETE: 100}
        if self.stage in fixed:
            object.__setattr__(self, "percent", fixed[self.stage])

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage.value,
            "percent": self.percent,
            "updated_by": self.updated_by,
            "updated_at": self.updated_at,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RouteFlag:
        try:
            stage = Stage(raw["stage"])
        except (KeyError, ValueError) as exc:
            raise FlagError(f"bad stage in stored flag: {raw.get('stage')!r}") from exc
        return cls(
            stage=stage,
            percent=int(raw.get("percent", 0)),
            updated_by=str(raw.get("updated_by", "")),
            updated_at=float(raw.get("updated_at", 0.0)),
            reason=str(raw.get("reason", "")),
        )

    def same_setting(self, other: RouteFlag) -> bool:
        return self.stage == other.stage and self.percent == other.percent


def check_flip(route: str, stage: Stage, percent: int | None,
               known: Mapping[str, RouteFlag]) -> int:
    """Validate a requested flip; returns the percentage to store."""
    if route not in known:
        raise UnknownRoute(f"unknown route {route!r} (known: {', '.join(sorted(known))})")
    if stage is Stage.CANARY and percent is None:
        raise FlagError("canary needs --percent (0..100)")
    if stage is not Stage.CANARY and percent not in (None, 0, 100):
        raise FlagError(f"percent applies to canary only; {stage.value} is fixed")
    if percent is not None and (not isinstance(percent, int) or isinstance(percent, bool)
                                or not 0 <= percent <= 100):
        raise FlagError(f"percent must be within 0..100, got {percent!r}")
    return percent or 0


def moving_together(route: str, groups: Mapping[str, str]) -> tuple[str, ...]:
    """``route`` and every route of its group, in a stable order."""
    group = groups.get(route)
    if group is None:
        return (route,)
    return tuple(sorted(r for r, g in groups.items() if g == group))


def parse_stage(text: str) -> Stage:
    try:
        return Stage(text)
    except ValueError:
        allowed = ", ".join(s.value for s in Stage)
        raise FlagError(f"unknown stage {text!r} (one of: {allowed})") from None


@dataclass(frozen=True, slots=True)
class FlagState:
    """Every route's flag plus the global kill switch, at one ``version``."""

    routes: Mapping[str, RouteFlag] = field(default_factory=dict)
    kill_switch: bool = False
    version: int = 0
    groups: Mapping[str, str] = field(default_factory=dict)
    """route -> group name, for routes that must move together (config, not runtime)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "routes", MappingProxyType(dict(self.routes)))
        object.__setattr__(self, "groups", MappingProxyType(dict(self.groups)))

    def with_route(self, name: str, flag: RouteFlag) -> FlagState:
        return replace(self, routes={**self.routes, name: flag})
