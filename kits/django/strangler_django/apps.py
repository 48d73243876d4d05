"""The Django app: checks the settings and the middleware order when Django starts."""

from __future__ import annotations

from django.apps import AppConfig


class StranglerConfig(AppConfig):  # type: ignore[misc]  # Django ships no type stubs
    name = "strangler_django"
    verbose_name = "Strangler session-export hook"

    def ready(self) -> None:
        from strangler_django import conf

        conf.check_environment()
        conf.get()
