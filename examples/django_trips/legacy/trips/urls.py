"""The trips URLs: the JSON API, ``/healthz``, and the kit's internal session hook."""

from django.urls import include, path
from planner import views

urlpatterns = [
    path("healthz", views.healthz),
    path("accounts/login", views.login_view),
    path("accounts/logout", views.logout_view),
    path("api/me", views.me),
    path("api/destinations", views.destinations),
    path("api/destinations/<str:slug>", views.destination),
    path("api/state", views.state_view),
    path("api/prefs/<str:key>", views.prefs),
    path("api/saved/<str:slug>", views.saved),
    path("api/views/<str:slug>", views.viewed),
    path("api/wizard", views.wizard_clear),
    path("api/wizard/<str:step>", views.wizard_step),
    path("api/draft", views.draft),
    path("api/bookings", views.bookings),
    path("_internal/sessions/", include("strangler_django.urls")),
]

handler404 = "planner.views.not_found"
handler500 = "planner.views.server_error"
