"""What one node runs with: one frozen object, built by ``__main__`` or a test."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Settings:
    """``internal_token`` guards ``/_internal/sessions``; ``None`` turns those off (503)."""

    node_id: str = "n1"
    internal_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.node_id:
            raise ValueError("node_id must not be empty")
