"""What ``SessionShapes`` learnt, as frozen figures per path -- and as JSON, for the admin
API and for a CLI that asks a running gateway (``Summary.to_json`` / ``from_json``).

A path is a JSON pointer (``pointer``) whose segment ``*`` (``ANY``) stands for
any element: an array's items, or the members of an object keyed by data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

ANY: Final = "*"
"""The segment for "any element": an array's items, or the members of a keyed object."""
KINDS: Final = ("object", "array", "string", "integer", "number", "boolean", "null")
SCALARS: Final = frozenset({"string", "integer", "number", "boolean"})

Path = tuple[str, ...]


def pointer(segments: Path) -> str:
    return "".join("/" + s.replace("~", "~0").replace("/", "~1") for s in segments)


def segments_of(path: str) -> Path:
    if path == "":
        return ()
    if not path.startswith("/"):
        raise ValueError(f"{path!r} is not a JSON pointer")
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:])


@dataclass(frozen=True, slots=True)
class PathSummary:
    """The figures of one path (``segments``; ``ANY`` for any element)."""

    segments: Path
    types: Mapping[str, int]
    sessions: int
    samples: int
    repeats: int = 0
    changes: int = 0
    size_max: int = 0
    size_avg: float = 0.0
    strings: Mapping[str, int] = field(default_factory=dict)
    negative: int = 0
    members: tuple[int, int, float] | None = None
    """Objects: (min, max, average) member count."""
    member_types: Mapping[str, int] = field(default_factory=dict)
    keyed: int = 0
    """Members counted under ``ANY`` (names that look like data, or too many)."""
    items: tuple[int, float] | None = None
    """Arrays: (max, average) item count."""
    unsorted: int = 0
    duplicates: int = 0

    @property
    def path(self) -> str:
        return pointer(self.segments)

    @property
    def occurrences(self) -> int:
        return sum(self.types.values())

    def to_json(self, sessions_total: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path, "types": dict(self.types), "sessions": self.sessions,
            "presence": round(self.sessions / sessions_total, 4) if sessions_total else 0.0,
            "samples": self.samples, "repeats": self.repeats, "changes": self.changes,
            "size": {"max": self.size_max, "avg": round(self.size_avg, 1)}}
        if self.strings:
            out["strings"] = dict(self.strings)
        if self.negative:
            out["negative"] = self.negative
        if self.members is not None:
            out["object"] = {"members": {"min": self.members[0], "max": self.members[1],
                                        "avg": round(self.members[2], 2)},
                             "member_types": dict(self.member_types), "keyed": self.keyed}
        if self.items is not None:
            out["array"] = {"items": {"max": self.items[0], "avg": round(self.items[1], 2)},
                            "unsorted": self.unsorted, "duplicates": self.duplicates}
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PathSummary:
        size, o, a = obj.get("size", {}), obj.get("object"), obj.get("array")
        m = o["members"] if o else None
        return cls(
            segments_of(obj["path"]), _counts(obj["types"]), int(obj["sessions"]),
            int(obj["samples"]), int(obj.get("repeats", 0)), int(obj.get("changes", 0)),
            int(size.get("max", 0)), float(size.get("avg", 0.0)),
            _counts(obj.get("strings", {})), int(obj.get("negative", 0)),
            (int(m["min"]), int(m["max"]), float(m["avg"])) if m else None,
            _counts(o["member_types"]) if o else {}, int(o["keyed"]) if o else 0,
            (int(a["items"]["max"]), float(a["items"]["avg"])) if a else None,
            int(a["unsorted"]) if a else 0, int(a["duplicates"]) if a else 0)


@dataclass(frozen=True, slots=True)
class Summary:
    samples: int
    sessions: int
    """Sessions sampled (one forgotten past ``max_sessions`` and seen again counts twice)."""
    paths: tuple[PathSummary, ...]
    first_at: float | None = None
    last_at: float | None = None
    not_objects: int = 0
    """Samples whose ``data`` was not an object (such a session fits no profile)."""
    untracked: int = 0
    """Occurrences of paths past ``max_paths``, measured with their parent only."""

    def get(self, segments: Path) -> PathSummary | None:
        return next((p for p in self.paths if p.segments == segments), None)

    def to_json(self) -> dict[str, Any]:
        return {"samples": self.samples, "sessions": self.sessions,
                "first_at": self.first_at, "last_at": self.last_at,
                "not_objects": self.not_objects, "untracked": self.untracked,
                "paths": [p.to_json(self.sessions) for p in self.paths]}

    @classmethod
    def from_json(cls, obj: Any) -> Summary:
        """A summary another process sent; ``ValueError`` if it is not one."""
        try:
            return cls(int(obj["samples"]), int(obj["sessions"]),
                       tuple(PathSummary.from_json(p) for p in obj["paths"]),
                       obj.get("first_at"), obj.get("last_at"), int(obj.get("not_objects", 0)),
                       int(obj.get("untracked", 0)))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not a session schema summary: {exc!r}") from None


def _counts(obj: Any) -> dict[str, int]:
    if not isinstance(obj, dict):
        raise TypeError("counts must be an object")
    return {str(k): int(v) for k, v in obj.items()}
