"""The Django kit's middleware on Django's real session machinery, in this process.

An import landing while an app request is under way is made deterministic here
(the view itself calls the kit's import): the request's save must keep the
import's keys, apply only what the request changed, and count on from the
import's revision. Django is configured once for this process (locmem cache
sessions); nothing else in the suite configures Django.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(
        SECRET_KEY="k" * 40, ALLOWED_HOSTS=["*"], USE_TZ=True,
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                            "LOCATION": "strangler-kit-tests"}},
        INSTALLED_APPS=["strangler_django"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware",
                    "strangler_django.middleware.RevisionMiddleware"],
        STRANGLER={"NODE_ID": "t", "INTERNAL_TOKEN": "tok",
                   "HEADERS": {"session_id": "X-S", "revision": "X-R", "node": "X-N"}})
    django.setup()

from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from strangler_django import locks, sessions
from strangler_django.middleware import RevisionMiddleware, same
from strangler_django.revision import REV_KEY

View = Callable[[HttpRequest], HttpResponse]


def serve(view: View, sid: str | None) -> HttpResponse:
    """One request through SessionMiddleware -> RevisionMiddleware -> ``view``."""
    chain = SessionMiddleware(RevisionMiddleware(view))
    request = RequestFactory().get("/", HTTP_COOKIE=f"sessionid={sid}" if sid else "")
    response: HttpResponse = chain(request)
    return response


def new_session(data: dict[str, Any]) -> str:
    """A session at revision 1 under a fresh id, made as the gateway would: an import."""
    sid = secrets.token_hex(16)
    assert sessions.import_(sid, data, 0, None) == sessions.Outcome(True, 1)
    return sid


def test_a_change_counts_one_and_the_headers_say_so() -> None:
    sid = new_session({"a": 1})

    def view(request: HttpRequest) -> HttpResponse:
        request.session["a"] = 2
        return HttpResponse("ok")

    response = serve(view, sid)
    assert (response["X-S"], response["X-R"], response["X-N"]) == (sid, "2", "t")
    assert sessions.export(sid, None) == sessions.Exported(2, {"a": 2}, None)


def test_an_import_that_lands_during_a_request_is_kept() -> None:
    sid = new_session({"mine": "old", "theirs": "old", "gone": 1, "both": "old"})

    def view(request: HttpRequest) -> HttpResponse:
        assert request.session["mine"] == "old"
        landed = sessions.import_(sid, {"mine": "old", "theirs": "new", "gone": 1,
                                        "both": "theirs", "added": [1.0]}, 1, 5)
        assert landed == sessions.Outcome(True, 2)
        request.session["mine"] = "changed"
        request.session["both"] = "mine"
        del request.session["gone"]
        return HttpResponse("ok")

    response = serve(view, sid)
    assert response["X-R"] == "3", "counted on from the import's revision"
    found = sessions.export(sid, None)
    assert found is not None and found.revision == 3 and found.imported == (5, 2)
    assert found.data == {"mine": "changed", "theirs": "new", "both": "mine", "added": [1.0]}


def test_the_lock_is_free_once_the_request_is_done() -> None:
    sid = new_session({"a": 1})

    def view(request: HttpRequest) -> HttpResponse:
        request.session["a"] = 2
        return HttpResponse("ok")

    serve(view, sid)
    release = locks.take(sid)  # would raise Busy after WAIT_S if the request kept it
    release()
    release()  # twice is harmless


def test_a_failed_request_changes_nothing() -> None:
    sid = new_session({"a": 1})

    def view(request: HttpRequest) -> HttpResponse:
        request.session["a"] = 2
        return HttpResponse("boom", status=500)

    response = serve(view, sid)
    assert response["X-R"] == "1"
    assert sessions.export(sid, None) == sessions.Exported(1, {"a": 1}, None)


def test_a_new_session_is_created_at_revision_one_and_named() -> None:
    def view(request: HttpRequest) -> HttpResponse:
        request.session["hello"] = "world"
        return HttpResponse("ok")

    response = serve(view, None)
    sid = response["X-S"]
    assert response["X-R"] == "1" and response.cookies["sessionid"].value == sid
    assert sessions.export(sid, None) == sessions.Exported(1, {"hello": "world"}, None)


def test_an_unknown_cookie_reports_revision_zero() -> None:
    response = serve(lambda request: HttpResponse("ok"), "nosuchsession" + "0" * 19)
    assert (response["X-S"], response["X-R"]) == ("nosuchsession" + "0" * 19, "0")


@pytest.mark.parametrize("a,b,equal", [(1, 1, True), (1, 1.0, False), (1, True, False),
                                       ({"x": [1]}, {"x": [1]}, True),
                                       ({"x": [1]}, {"x": [1.0]}, False),
                                       ([1, 2], [1], False), ({"x": 1}, {"y": 1}, False)])
def test_same_compares_typed_values(a: Any, b: Any, equal: bool) -> None:
    assert same(a, b) is equal


def test_the_revision_key_never_leaks_into_an_export() -> None:
    sid = new_session({"a": 1})
    found = sessions.export(sid, None)
    assert found is not None and REV_KEY not in found.data


def test_a_session_locked_too_long_is_a_503_and_nothing_is_saved(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sid = new_session({"a": 1})
    monkeypatch.setattr(locks, "WAIT_S", 0.05)

    def view(request: HttpRequest) -> HttpResponse:
        request.session["a"] = 2
        return HttpResponse("ok")

    release = locks.take(sid)  # a stuck holder
    try:
        with pytest.raises(locks.Busy):
            sessions.import_(sid, {"a": 3}, None, None)
        response = serve(view, sid)
    finally:
        release()
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert sessions.export(sid, None) == sessions.Exported(1, {"a": 1}, None)
