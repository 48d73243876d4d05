"""``path("_internal/sessions/", include("strangler_django.urls"))``.

``<path:sid>`` takes any id, ``/`` included once percent-decoded, so every id
reaches the view and gets a JSON answer (an id the node cannot hold: 404 on
GET, 400 on PUT) instead of Django's HTML 404.
"""

from __future__ import annotations

from django.urls import path

from strangler_django import views

app_name = "strangler_django"
urlpatterns = [path("<path:sid>", views.session, name="session")]
