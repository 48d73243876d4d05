"""What the shadow stage has seen, per route: counts, noise, and a sampled diff log.

Pure bookkeeping (the clock is passed in); lives in the gateway process, so
each gateway reports its own share of the traffic.

**Noise is judged again when it is learned.** An inconsistent comparison is
kept as its *signature* -- the set of difference shapes that remained after
the ignore rules and the noise known at the time. The inconsistent count, the
consistency rate, the top differing paths and the diff log are computed
against the noise known *now*, so the comparisons made before a timestamp was
recognised as noise stop counting against new once it is. Signatures are few
(shapes, not concrete paths); beyond ``MAX_SIGNATURES`` distinct ones, the
extra comparisons stay counted as inconsistent for good.

**The diff log** keeps at most ``size`` entries, at most ``size // 5`` (>= 1)
per signature (a newer entry replaces the oldest of its signature), and when
full evicts the oldest entry of the most represented signature -- so a rare
difference is not pushed out by a frequent one. Entries hold the canonical
path (no query string), statuses, the request id and at most
``MAX_ENTRY_DIFFERENCES`` short, redacted differences: never a body, a cookie
or a token.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.shadow.compare import Difference

MAX_SIGNATURES = 512
MAX_NOISE_CANDIDATES = 256
MAX_ENTRY_DIFFERENCES = 20


@dataclass(frozen=True, slots=True)
class DiffEntry:
    at: float
    method: str
    path: str
    request_id: str
    legacy_status: int
    new_status: int
    differences: tuple[Difference, ...]
    more: int = 0
    """Differences beyond those kept."""

    @property
    def signature(self) -> frozenset[str]:
        return frozenset(d.shape for d in self.differences)

    def to_dict(self, noise: frozenset[str]) -> dict[str, Any]:
        shown = [d.to_dict() for d in self.differences if d.shape not in noise]
        return {"time": _iso(self.at), "method": self.method, "path": self.path,
                "request_id": self.request_id, "legacy_status": self.legacy_status,
                "new_status": self.new_status, "differences": shown, "more": self.more}


@dataclass
class RouteStats:
    route: str
    noise_threshold: int = 3
    diff_log_size: int = 50
    compared: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    unsampled: int = 0
    """Safe requests left out by ``sample_rate`` (by design, not a failure)."""
    noise_samples: int = 0
    noise_missed_by: Counter[str] = field(default_factory=Counter)
    last_compared_at: float | None = None
    _signatures: dict[frozenset[str], int] = field(default_factory=dict)
    _overflow: int = 0
    _noise_counts: dict[str, int] = field(default_factory=dict)
    _noise: frozenset[str] = frozenset()
    _inconsistent: int = 0
    _log: dict[frozenset[str], deque[DiffEntry]] = field(default_factory=dict)
    _log_len: int = 0

    # ------------------------------------------------------------ noise
    @property
    def noise(self) -> frozenset[str]:
        """Shapes that differed between two legacy answers at least ``noise_threshold`` times."""
        return self._noise

    def noise_sample(self, shapes: Iterable[str]) -> bool:
        """Record one legacy-vs-legacy comparison; True if the learned noise grew."""
        self.noise_samples += 1
        grew = False
        for shape in shapes:
            count = self._noise_counts.get(shape)
            if count is None:
                if len(self._noise_counts) >= MAX_NOISE_CANDIDATES:
                    continue
                count = 0
            self._noise_counts[shape] = count + 1
            if count + 1 >= self.noise_threshold and shape not in self._noise:
                self._noise = self._noise | {shape}
                grew = True
        if grew:
            self._inconsistent = self._count_inconsistent()
            explained = [sig for sig in self._log if sig <= self._noise]
            for sig in explained:  # their entries would never be shown again
                self._log_len -= len(self._log.pop(sig))
        return grew

    def noise_missed(self, reason: str) -> None:
        """A second legacy answer that was wanted but is unusable or was never asked for."""
        self.noise_missed_by[reason] += 1

    # ------------------------------------------------------------ comparisons
    def comparison(self, entry: DiffEntry, all_differences: int, now: float) -> bool:
        """Record one legacy-vs-new comparison (``entry.differences`` already filtered);
        True if it counts as consistent."""
        self.compared += 1
        self.last_compared_at = now
        sig = frozenset(d.shape for d in entry.differences)
        if not sig:
            return True
        if sig in self._signatures or len(self._signatures) < MAX_SIGNATURES:
            self._signatures[sig] = self._signatures.get(sig, 0) + 1
        else:
            self._overflow += 1
            self._inconsistent += 1
            self._remember(entry, all_differences)
            return False
        if sig <= self._noise:
            return True
        self._inconsistent += 1
        self._remember(entry, all_differences)
        return False

    def error(self, reason: str, now: float) -> None:
        self.errors[reason] += 1
        self.last_compared_at = now

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    @property
    def inconsistent(self) -> int:
        return self._inconsistent

    @property
    def consistent(self) -> int:
        return self.compared - self._inconsistent

    @property
    def consistency_rate(self) -> float | None:
        return self.consistent / self.compared if self.compared else None

    def _count_inconsistent(self) -> int:
        noise = self._noise
        return self._overflow + sum(n for sig, n in self._signatures.items()
                                    if not sig <= noise)

    def top_paths(self, n: int = 10) -> list[tuple[str, int]]:
        """Shapes by how many inconsistent comparisons they appear in (noise left out)."""
        counts: Counter[str] = Counter()
        for sig, hits in self._signatures.items():
            for shape in sig - self._noise:
                counts[shape] += hits
        return counts.most_common(n)

    # ------------------------------------------------------------ diff log
    def _remember(self, entry: DiffEntry, all_differences: int) -> None:
        size = self.diff_log_size
        if size <= 0:
            return
        kept = entry.differences[:MAX_ENTRY_DIFFERENCES]
        entry = DiffEntry(entry.at, entry.method, entry.path, entry.request_id,
                          entry.legacy_status, entry.new_status, kept,
                          all_differences - len(kept))
        sig = frozenset(d.shape for d in entry.differences)
        bucket = self._log.get(sig)
        if bucket is None:
            bucket = self._log[sig] = deque(maxlen=max(1, size // 5))
        if len(bucket) == bucket.maxlen:
            self._log_len -= 1
        bucket.append(entry)
        self._log_len += 1
        while self._log_len > size:
            fullest = max(self._log.values(), key=lambda q: (len(q), -q[0].at))
            fullest.popleft()
            self._log_len -= 1
            if not fullest:
                self._log = {k: q for k, q in self._log.items() if q}

    def diff_log(self) -> list[DiffEntry]:
        """Newest first; entries that learned noise now explains are left out."""
        noise = self._noise
        entries = [e for q in self._log.values() for e in q if not e.signature <= noise]
        return sorted(entries, key=lambda e: e.at, reverse=True)

    # ------------------------------------------------------------ views
    def summary(self) -> dict[str, Any]:
        rate = self.consistency_rate
        return {
            "route": self.route,
            "compared": self.compared,
            "consistent": self.consistent,
            "inconsistent": self.inconsistent,
            "consistency_rate": None if rate is None else round(rate, 6),
            "errors": sum(self.errors.values()),
            "skipped": sum(self.skipped.values()),
            "unsampled": self.unsampled,
            "noise_paths": len(self._noise),
            "top_differences": [{"path": p, "count": c} for p, c in self.top_paths(3)],
            "last_compared_at": _iso(self.last_compared_at),
        }

    def report(self) -> dict[str, Any]:
        out = self.summary()
        out.update({
            "errors_by_reason": dict(self.errors),
            "skipped_by_reason": dict(self.skipped),
            "top_differences": [{"path": p, "count": c} for p, c in self.top_paths(20)],
            "noise": {
                "threshold": self.noise_threshold,
                "samples": self.noise_samples,
                "missed_samples": dict(self.noise_missed_by),
                "learned": self._noise_list(learned=True),
                "candidates": self._noise_list(learned=False),
            },
            "diff_log": {"size": self.diff_log_size,
                         "entries": [e.to_dict(self._noise) for e in self.diff_log()]},
        })
        return out

    def _noise_list(self, learned: bool) -> list[dict[str, Any]]:
        rows = [{"path": p, "count": c} for p, c in self._noise_counts.items()
                if (p in self._noise) == learned]
        return sorted(rows, key=lambda r: (-r["count"], r["path"]))


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"
