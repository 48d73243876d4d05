"""The SDK in an aiohttp service: setup, middlewares and the per-request ``Caller``.

``setup(app, settings, make_redis)`` opens the SDK's objects when the app
starts and closes them when it stops. ``middlewares(...)``, outermost first:

- ``errors``: SDK errors (``HttpError``) become their JSON answer
  ``{"error", "detail"}`` (``details`` may give the texts an application's
  contract uses); a 404/405 from the router gets the same shape; Redis and
  database failures a 503 with ``Retry-After`` (nothing was written); anything
  else a 500.
- ``shadow_guard``: a request carrying ``X-Strangler-Shadow`` may not change
  state: 409 ``shadow_write_refused`` for any method but GET and HEAD (and any
  session write a GET tries is refused too).
- ``identity``: puts a ``Caller`` on the request (``caller(request)``): its
  verified identity and an accessor for its session. With ``audience`` set the
  token is verified before the handler runs -- no header: anonymous; a bad one:
  401 ``not_logged_in``, never anonymous. Without it, handlers verify when they
  ask (``await caller(request).identity_for(service)``): one app serving
  several services' routes checks each route's own ``aud``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError

from adapters.claims import Identity
from adapters.profile import SessionProfile
from adapters.wire import IDENTITY_HEADER, SHADOW_HEADER

from .config import SdkSettings
from .errors import HttpError, InvalidToken, NotLoggedIn, ShadowWriteRefused, Unavailable
from .fields import SessionData
from .redis_client import RedisClient
from .runtime import Strangler
from .sessions import Snapshot

log = structlog.get_logger("strangler_sdk.http")

SDK = web.AppKey("strangler_sdk", Strangler)
_SAFE_METHODS = frozenset({"GET", "HEAD"})
# Failures of a backing store, as opposed to bugs: the gateway may retry elsewhere.
_UNAVAILABLE = (RedisError, OperationalError, InterfaceError, OSError, asyncio.TimeoutError)


def setup(app: web.Application, settings: SdkSettings,
          make_redis: Callable[[], RedisClient]) -> None:
    """Open the SDK (keys, Redis client, sessions) when ``app`` starts; close at stop."""
    async def context(app: web.Application) -> AsyncIterator[None]:
        redis = make_redis()
        try:
            app[SDK] = sdk = await Strangler.open(settings, redis)
        except BaseException:
            await redis.aclose()
            raise
        yield
        await sdk.close()
        await redis.aclose()
    app.cleanup_ctx.append(context)


class Caller:
    """Who sent a request, and their session, read at most once per request."""

    def __init__(self, request: web.Request, sdk: Strangler) -> None:
        self._request = request
        self._sdk = sdk
        self._identities: dict[tuple[str, bool], Identity | None] = {}
        self._snapshot: Snapshot | None = None
        self.identity: Identity | None = None
        """The identity verified for this request (by the middleware for its ``audience``,
        or by a handler's ``identity_for``), else ``None``."""

    @property
    def shadow(self) -> bool:
        return SHADOW_HEADER in self._request.headers

    async def identity_for(self, audience: str, *, guests: bool | None = None) -> Identity | None:
        """The token's identity for ``audience``; ``None`` without a header;
        ``NotLoggedIn`` for a bad token (or one for another service)."""
        allow = self._sdk.settings.guests if guests is None else guests
        if (audience, allow) not in self._identities:
            token = self._request.headers.get(IDENTITY_HEADER)
            found = None
            if token is not None:
                try:
                    found = await self._sdk.verifier.identify(token, audience, guests=allow)
                except InvalidToken:
                    raise NotLoggedIn() from None  # the reason stays out of logs and answers
            self._identities[(audience, allow)] = found
        found = self._identities[(audience, allow)]
        if found is not None:
            self.identity = found  # the caller whose session session() and update() use
        return found

    def require_identity(self) -> Identity:
        if self.identity is None:
            raise NotLoggedIn()
        return self.identity

    async def snapshot(self) -> Snapshot:
        """The caller's session as read now; ``NotLoggedIn`` if there is none for them."""
        if self._snapshot is None:
            snap = await self._sdk.sessions.read_owned(self.require_identity())
            if snap is None:
                raise NotLoggedIn()
            self._snapshot = snap
        return self._snapshot

    async def session(self) -> SessionData:
        """The caller's session through the deployment's profile."""
        return SessionData((await self.snapshot()).doc, self._profile())

    async def update(self, change: Callable[[SessionData], SessionData], *,
                     op: str | None = None) -> SessionData:
        """Apply ``change`` to the caller's session exactly once (re-applied on a
        conflict; ``NotLoggedIn`` if the session is gone)."""
        if self.shadow:
            raise ShadowWriteRefused()
        profile = self._profile()
        first = await self.snapshot()
        doc = await self._sdk.sessions.update(
            self.require_identity(), lambda d: change(SessionData(d, profile)).doc,
            first=first, op=op)
        self._snapshot = None
        return SessionData(doc, profile)

    def _profile(self) -> SessionProfile:
        profile = self._sdk.settings.profile
        if profile is None:
            raise RuntimeError("SdkSettings.profile is needed to read fields by name")
        return profile


CALLER = web.RequestKey("strangler_sdk_caller", Caller)


def caller(request: web.Request) -> Caller:
    """The request's ``Caller`` (the ``identity`` middleware put it there)."""
    return request[CALLER]


def middlewares(audience: str | None = None, *,
                details: Mapping[str, str] | None = None) -> tuple[Middleware, ...]:
    """``errors``, ``shadow_guard`` and ``identity``, in that order (see the module)."""
    texts = dict(details or {})

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except HttpError as exc:
            return error_response(exc, texts)
        except web.HTTPNotFound:
            return error_response(
                _Routing(404, "not_found", texts.get("not_found", "no such resource")))
        except web.HTTPException as exc:  # 405, 413...: the same JSON shape as the rest
            response = error_response(
                _Routing(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason), texts)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        except _UNAVAILABLE as exc:
            log.warning("dependency_failed", error=type(exc).__name__)
            return error_response(Unavailable(), texts)
        except Exception:
            log.exception("unhandled_error")
            return error_response(HttpError(), texts)

    @web.middleware
    async def shadow_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if SHADOW_HEADER in request.headers and request.method not in _SAFE_METHODS:
            log.warning("shadow_write_refused", method=request.method, path=request.path)
            raise ShadowWriteRefused()
        return await handler(request)

    @web.middleware
    async def identity(request: web.Request, handler: Handler) -> web.StreamResponse:
        who = request[CALLER] = Caller(request, request.app[SDK])
        if audience is not None:
            who.identity = await who.identity_for(audience)
        return await handler(request)

    return (errors, shadow_guard, identity)


class _Routing(HttpError):
    def __init__(self, status: int, code: str, detail: str) -> None:
        self.status, self.code = status, code
        super().__init__(detail)


def error_response(exc: HttpError, details: Mapping[str, str] | None = None) -> web.Response:
    """The JSON answer for ``exc``; ``details`` replaces the SDK's default text of a code
    (an error raised with a text of its own keeps it)."""
    body = exc.body
    if details and exc.code in details and exc.detail == type(exc).detail:
        body = {**body, "detail": details[exc.code]}
    response = web.json_response(body, status=exc.status)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = exc.retry_after
    return response
