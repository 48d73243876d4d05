"""The planner app."""

from django.apps import AppConfig


class PlannerConfig(AppConfig):  # type: ignore[misc]  # Django ships no type stubs
    name = "planner"
    default_auto_field = "django.db.models.BigAutoField"
