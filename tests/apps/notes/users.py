"""Who can log in: four built-in users, or the ones a JSON file lists.

Passwords are plain text on purpose: this is a test app, and its users file is
test data. They are still compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_USER_ID = re.compile(r"u-[0-9]{1,12}")


class UsersFileError(ValueError):
    """The users file is not a JSON list of ``{"id", "username", "name", "password"}``."""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    """A string id such as ``u-1001`` (never an int: that is the point of this app)."""
    username: str
    name: str
    """Display name; may hold any unicode."""
    password: str = field(repr=False)


DEFAULT_USERS: tuple[User, ...] = (
    User("u-1001", "ann", "Ann Lee", "ann-pass"),
    User("u-1002", "bo", "Bo Chen", "bo-pass"),
    User("u-1003", "cy", "Cy Díaz", "cy-pass"),
    User("u-1004", "dee", "Dee O'Neil", "dee-pass"),
)


class Users:
    """Users by username."""

    def __init__(self, users: Iterable[User] = DEFAULT_USERS) -> None:
        self._by_name: dict[str, User] = {}
        ids: set[str] = set()
        for user in users:
            if user.username in self._by_name or user.id in ids:
                raise UsersFileError(f"duplicate user {user.username!r} / {user.id!r}")
            self._by_name[user.username] = user
            ids.add(user.id)

    def __iter__(self) -> Iterator[User]:
        return iter(self._by_name.values())

    def authenticate(self, username: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else ``None`` (same work either way)."""
        user = self._by_name.get(username)
        expected = user.password if user else "\0 no such user"
        ok = hmac.compare_digest(password.encode("utf-8", "surrogateescape"),
                                 expected.encode("utf-8"))
        return user if ok and user is not None else None


def load_users(path: Path) -> Users:
    """``[{"id": "u-1", "username": "ann", "name": "Ann Lee", "password": "..."}, ...]``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UsersFileError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(raw, list) or not raw:
        raise UsersFileError(f"{path}: must be a non-empty JSON list of users")
    return Users(_user(path, i, entry) for i, entry in enumerate(raw))


def _user(path: Path, index: int, entry: Any) -> User:
    keys = ("id", "username", "name", "password")
    if not isinstance(entry, dict) or set(entry) != set(keys) \
            or not all(isinstance(entry[k], str) and entry[k] for k in keys):
        raise UsersFileError(f"{path}: [{index}] must be an object of non-empty strings "
                             f"with exactly {', '.join(keys)}")
    if not _USER_ID.fullmatch(entry["id"]):
        raise UsersFileError(f"{path}: [{index}].id must look like u-1001")
    return User(entry["id"], entry["username"], entry["name"], entry["password"])
