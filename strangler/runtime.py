"""Files the demo leaves for other commands: where its private Redis listens."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.settings import RedisSection

RUNTIME_FILE = Path(".strangler/demo.json")


def write(data: dict[str, object]) -> None:
    RUNTIME_FILE.parent.mkdir(parents=True, exist_ok=True)
    RUNTIME_FILE.write_text(json.dumps(data, indent=2))


def clear() -> None:
    RUNTIME_FILE.unlink(missing_ok=True)


def redis_url(configured: str | None, override: str | None = None) -> str | None:
    """``--redis-url``, else config.yaml's ``redis.url``, else the running demo's Redis."""
    if override:
        return override
    if configured:
        return configured
    try:
        return str(json.loads(RUNTIME_FILE.read_text())["redis_url"])
    except (OSError, ValueError, KeyError):
        return None


def redis_section(section: RedisSection, override: str | None = None) -> RedisSection | None:
    """The Redis to use: ``--redis-url``, else config.yaml's (a url, sentinel set-up or
    cluster), else the running demo's; None if there is none."""
    if override:
        return section.model_copy(update={"url": override, "sentinel": None, "cluster": None})
    if section.configured:
        return section
    url = redis_url(None)
    return section.model_copy(update={"url": url}) if url else None
