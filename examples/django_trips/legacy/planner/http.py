"""JSON in and out for the planner's views: errors as ``{"error", "detail"}``, never a 500
for bad input.

``endpoint`` wraps a view: it picks the handler for the method (405 otherwise),
checks the login where asked (401 ``not_logged_in``) and turns ``ApiError``
into its answer. Bodies are parsed strictly: ``NaN``/``Infinity`` and numbers
that overflow a float are not JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

MAX_BODY_BYTES = 64 * 1024
Handler = Callable[..., HttpResponse]


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


def ok(body: dict[str, Any], status: int = 200) -> JsonResponse:
    return JsonResponse(body, status=status, json_dumps_params={"allow_nan": False})


def endpoint(*, login: bool, **handlers: Handler) -> Callable[..., HttpResponse]:
    """A view answering the given methods (``get=``, ``put=``...), JSON errors included."""

    def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        handler = handlers.get((request.method or "").lower())
        if handler is None:
            response = error(405, "method_not_allowed", f"allowed: {_allowed(handlers)}")
            response["Allow"] = _allowed(handlers)
            return response
        if login and not request.user.is_authenticated:
            return error(401, "not_logged_in", "log in first")
        try:
            return handler(request, **kwargs)
        except ApiError as exc:
            return error(exc.status, exc.code, exc.detail)

    exempt: Callable[..., HttpResponse] = csrf_exempt(view)
    return exempt


def _allowed(handlers: dict[str, Handler]) -> str:
    return ", ".join(sorted(m.upper() for m in handlers))


def body_json(request: HttpRequest) -> Any:
    """The request's JSON body, or 400 ``bad_request``."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
        raise ApiError(400, "bad_request", f"a body is at most {MAX_BODY_BYTES} bytes")
    raw = request.read(MAX_BODY_BYTES + 1)
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse, parse_float=_finite)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_request", "the body is not JSON") from None


def body_object(request: HttpRequest) -> dict[str, Any]:
    value = body_json(request)
    if not isinstance(value, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return value


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a float")
    return value
