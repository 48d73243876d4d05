"""The Unleash SDK's cache for the Unleash-server provider: memory plus a snapshot on disk."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog
from UnleashClient.cache import BaseCache
from UnleashClient.constants import ETAG, FEATURES_URL

log = structlog.get_logger("flags")


class SnapshotCache(BaseCache):
    """The SDK's cache: in memory, and every fetched document also on disk.

    The snapshot is written atomically (a temporary file in the same
    directory, then a rename), so a crash never leaves half a document. A
    snapshot present at construction bootstraps the SDK. ``fetched_at`` is the
    monotonic time of the last fetch the server answered (200 or 304: the SDK
    stores the ETag of either).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._data: dict[str, Any] = {}
        self.fetched_at: float | None = None
        self.snapshot: dict[str, Any] | None = self._read()
        if self.snapshot is not None:
            self._data[FEATURES_URL] = json.dumps(self.snapshot)
            self.bootstrapped = True

    def _read(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("flags_snapshot_unreadable", path=str(self.path), reason=str(exc))
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
            log.error("flags_snapshot_unreadable", path=str(self.path),
                      reason="not a client-features document")
            return None
        return doc

    def _write(self, raw: str) -> None:
        try:
            json.loads(raw)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(raw)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except (OSError, ValueError) as exc:
            log.error("flags_snapshot_not_written", path=str(self.path), reason=str(exc))

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value
        if key == FEATURES_URL and value:
            self.fetched_at = time.monotonic()
            self._write(value)
        elif key == ETAG and value:
            self.fetched_at = time.monotonic()

    def mset(self, data: dict[str, Any]) -> None:
        for key, value in data.items():
            self.set(key, value)

    def get(self, key: str, default: Any | None = None) -> Any:
        return self._data.get(key, default)

    def exists(self, key: str) -> bool:
        return key in self._data

    def destroy(self) -> None:
        self._data.clear()  # the snapshot on disk outlives the client: that is its point
