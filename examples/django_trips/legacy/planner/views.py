"""The trips JSON API (examples/django_trips/CONTRACT.md), ``/healthz``, and JSON 404/500."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from planner import state
from planner.http import ApiError, body_json, body_object, endpoint, error, ok
from planner.models import Booking, Destination, User


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok", "node": settings.NODE_ID, "boot_id": settings.BOOT_ID})


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error(404, "not_found", "no such route")


def server_error(request: HttpRequest) -> HttpResponse:
    return error(500, "internal_error", "the server failed; see its log")


def _user(request: HttpRequest) -> dict[str, str]:
    user = request.user
    assert isinstance(user, User)
    shown: dict[str, str] = user.as_json()
    return shown


def _write(request: HttpRequest, key: str, value: Any) -> None:
    """Store ``value`` under ``key`` only if it changes: an unchanged session keeps its revision."""
    if key not in request.session or request.session[key] != value:
        request.session[key] = value


# accounts ------------------------------------------------------------------------------

def _login(request: HttpRequest) -> HttpResponse:
    body = body_object(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) \
            or not 1 <= len(username) <= 150 or len(password) > 1024:
        raise ApiError(400, "bad_request", 'body must be {"username": text, "password": text}')
    user = authenticate(request, username=username, password=password)
    if not isinstance(user, User):
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    login(request, user)
    request.session["username"] = user.username
    request.session["display_name"] = user.display_name or user.username
    return ok({"user": user.as_json()})


def _logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return ok({"ok": True})


login_view = endpoint(login=False, post=_login)
logout_view = endpoint(login=False, post=_logout)
me = endpoint(login=True, get=lambda request: ok({"user": _user(request)}))


# destinations --------------------------------------------------------------------------

def _destination(slug: str) -> Destination:
    found: Destination | None = (Destination.objects.filter(slug=slug).first()
                                 if state.SLUG.fullmatch(slug) else None)
    if found is None:
        raise ApiError(404, "not_found", f"no destination {slug!r}")
    return found


destinations = endpoint(login=False, get=lambda request: ok(
    {"destinations": [d.as_json() for d in Destination.objects.order_by("slug")]}))
destination = endpoint(login=False, get=lambda request, slug: ok(
    {"destination": _destination(slug).as_json()}))


# session-held state --------------------------------------------------------------------

def _state(request: HttpRequest) -> HttpResponse:
    return ok({"user": _user(request), **state.snapshot(request.session)})


def _pref_key(key: str) -> str:
    if not state.PREF_KEY.fullmatch(key):
        raise ApiError(400, "bad_request", "a pref key is 1 to 32 of [a-z_]")
    return key


def _put_pref(request: HttpRequest, key: str) -> HttpResponse:
    body = body_object(request)
    try:
        prefs = state.set_pref(request.session.get("prefs"), _pref_key(key), body.get("value"))
    except state.Invalid as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    _write(request, "prefs", prefs)
    return ok({"prefs": prefs})


def _delete_pref(request: HttpRequest, key: str) -> HttpResponse:
    prefs = state.drop_pref(request.session.get("prefs"), key)
    if "prefs" in request.session:
        _write(request, "prefs", prefs)
    return ok({"prefs": prefs})


def _put_saved(request: HttpRequest, slug: str) -> HttpResponse:
    saved = state.add_saved(request.session.get("saved"), _destination(slug).slug)
    _write(request, "saved", saved)
    return ok({"saved": saved})


def _delete_saved(request: HttpRequest, slug: str) -> HttpResponse:
    saved = state.drop_saved(request.session.get("saved"), slug)
    if "saved" in request.session:
        _write(request, "saved", saved)
    return ok({"saved": saved})


def _viewed(request: HttpRequest, slug: str) -> HttpResponse:
    views, recent = state.viewed(request.session.get("views"), request.session.get("recent"),
                                 _destination(slug).slug)
    _write(request, "views", views)
    _write(request, "recent", recent)
    return ok({"views": views, "recent": recent})


def _put_step(request: HttpRequest, step: str) -> HttpResponse:
    if step not in state.STEPS:
        raise ApiError(404, "not_found", f"a wizard step is one of {', '.join(state.STEPS)}")
    try:
        answers = state.wizard_answers(body_json(request))
    except state.Invalid as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    wizard = state.set_step(request.session.get("wizard"), step, answers)
    _write(request, "wizard", wizard)
    return ok({"wizard": wizard})


def _clear_wizard(request: HttpRequest) -> HttpResponse:
    if request.session.get("wizard"):
        request.session["wizard"] = {}
    return ok({"wizard": {}})


def _put_draft(request: HttpRequest) -> HttpResponse:
    try:
        text = state.draft_text(body_json(request))
    except state.Invalid as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    _write(request, "draft", text)
    return ok({"draft": text})


state_view = endpoint(login=True, get=_state)
prefs = endpoint(login=True, put=_put_pref, delete=_delete_pref)
saved = endpoint(login=True, put=_put_saved, delete=_delete_saved)
viewed = endpoint(login=True, post=_viewed)
wizard_step = endpoint(login=True, put=_put_step)
wizard_clear = endpoint(login=True, delete=_clear_wizard)
draft = endpoint(login=True, put=_put_draft)


# bookings ------------------------------------------------------------------------------

def _replay(booking: Booking) -> HttpResponse:
    response = ok({"booking": booking.as_json()})
    response["Idempotent-Replayed"] = "true"
    return response


def _book(request: HttpRequest) -> HttpResponse:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not state.valid_key(key):
        raise ApiError(400, "invalid_idempotency_key",
                       "Idempotency-Key is 1 to 255 printable ASCII characters")
    user = request.user
    assert isinstance(user, User)
    if key is not None and (done := Booking.objects.filter(user=user,
                                                           idempotency_key=key).first()):
        return _replay(done)
    wizard = request.session.get("wizard")
    if not state.wizard_complete(wizard):
        raise ApiError(400, "wizard_incomplete",
                       f"answer every wizard step first ({', '.join(state.STEPS)})")
    assert isinstance(wizard, dict)
    try:
        with transaction.atomic():
            booking = Booking.objects.create(
                user=user, destination=state.destination_of(wizard), answers=wizard,
                created_at=timezone.now().replace(microsecond=0), idempotency_key=key)
    except IntegrityError:  # the same key, made by a concurrent request: replay it
        return _replay(Booking.objects.get(user=user, idempotency_key=key))
    request.session["wizard"] = {}
    return ok({"booking": booking.as_json()}, status=201)


def _list_bookings(request: HttpRequest) -> HttpResponse:
    found = Booking.objects.filter(user=request.user).order_by("-created_at", "-id")
    return ok({"bookings": [b.as_json() for b in found]})


bookings = endpoint(login=True, post=_book, get=_list_bookings)
