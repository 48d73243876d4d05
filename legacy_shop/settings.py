"""What a monolith node runs with: one frozen object, built by the CLI or a test."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./.strangler/shop.db"
DEFAULT_SESSION_IDLE_S = 24 * 3600.0
DEFAULT_SWEEP_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class Settings:
    """Configuration of one node.

    ``internal_token`` guards ``/_internal/sessions``; ``None`` disables those
    endpoints (they answer 503) rather than leaving them open.
    """

    node_id: str = "a"
    database_url: str = DEFAULT_DATABASE_URL
    internal_token: str | None = field(default=None, repr=False)
    session_idle_s: float = DEFAULT_SESSION_IDLE_S
    sweep_interval_s: float = DEFAULT_SWEEP_INTERVAL_S
    init_db: bool = True
    """Create tables and seed at start-up (idempotent), as ``serve`` does."""

    def __post_init__(self) -> None:
        if not self.node_id:
            raise ValueError("node_id must not be empty")
        if self.session_idle_s <= 0 or self.sweep_interval_s <= 0:
            raise ValueError("session_idle_s and sweep_interval_s must be > 0")
