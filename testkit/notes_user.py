"""A notes user over real HTTP, and a model of what its state must be.

``NotesUser`` is a browser: its own cookie jar (``sessionid`` and the gateway's
affinity cookie), one method per route. ``NotesModel`` is what the user has
done: prefs, tags, visits and draft as the app must show them afterwards.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .browser import Browser, Reply
from .checks import expect


class NotesUser(Browser):
    """One browser-like client: keeps ``sessionid`` and the gateway's cookies."""

    session_cookie = "sessionid"

    async def login(self, username: str) -> Reply:
        return await self.call("POST", "/login",
                               {"username": username, "password": f"{username}-pass"})

    async def must_login(self, username: str) -> Reply:
        return expect(await self.login(username), 200, f"login as {username}")

    async def state(self) -> Reply:
        return await self.call("GET", "/api/state")

    async def me(self) -> Reply:
        return await self.call("GET", "/api/me")

    async def set_pref(self, key: str, value: str) -> Reply:
        return await self.call("PUT", f"/api/prefs/{key}", {"value": value})

    async def delete_pref(self, key: str) -> Reply:
        return await self.call("DELETE", f"/api/prefs/{key}")

    async def add_tag(self, tag: str) -> Reply:
        return await self.call("POST", "/api/tags", {"tag": tag})

    async def remove_tag(self, tag: str) -> Reply:
        return await self.call("DELETE", f"/api/tags/{quote(tag, safe='')}")

    async def visit(self, page: str) -> Reply:
        return await self.call("POST", f"/api/visits/{page}")

    async def set_draft(self, text: str | None) -> Reply:
        return await self.call("PUT", "/api/draft", {"text": text})

    async def raw(self, key: str, value: Any) -> Reply:
        return await self.call("PUT", f"/api/debug/raw/{key}", value)


@dataclass
class NotesModel:
    """What the user's ``/api/state`` must say (``user`` aside)."""

    prefs: dict[str, str] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    visits: Counter[str] = field(default_factory=Counter)
    draft: str | None = None

    def view(self) -> dict[str, Any]:
        return {"prefs": dict(self.prefs), "tags": sorted(self.tags),
                "visits": dict(+self.visits), "draft": self.draft}

    def matches(self, state: dict[str, Any]) -> bool:
        return {k: state.get(k) for k in ("prefs", "tags", "visits", "draft")} == self.view() \
            and _same_order(state)

    def apply(self, op: tuple[str, ...]) -> None:
        kind, *args = op
        if kind == "set_pref":
            self.prefs[args[0]] = args[1]
        elif kind == "delete_pref":
            self.prefs.pop(args[0], None)
        elif kind == "add_tag":
            self.tags.add(args[0])
        elif kind == "remove_tag":
            self.tags.discard(args[0])
        elif kind == "visit":
            self.visits[args[0]] += 1
        elif kind == "set_draft":
            self.draft = args[0]
        else:
            raise ValueError(kind)


def _same_order(state: dict[str, Any]) -> bool:
    tags = state.get("tags")
    return isinstance(tags, list) and tags == sorted(tags)


async def do(user: NotesUser, op: tuple[str, ...]) -> Reply:
    """Send one model operation as its request."""
    kind, *args = op
    method = getattr(user, kind)
    reply: Reply = await method(*args)
    return reply
