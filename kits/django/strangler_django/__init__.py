"""strangler-django: Strangler's session-export hook for a Django monolith.

Add ``strangler_django`` to ``INSTALLED_APPS``, ``RevisionMiddleware`` right
after Django's ``SessionMiddleware``, and ``include("strangler_django.urls")``
at ``_internal/sessions/``. The kit works on Django's own session machinery
(the ``SessionStore`` of ``settings.SESSION_ENGINE``) and never reads a
session's stored format. See README.md and docs/protocol.md section 4.

Modules: ``conf`` (settings and start-up checks), ``revision`` (the reserved
keys the kit keeps inside each session), ``locks`` and ``fences`` (process
memory), ``bodies`` (strict JSON in and out), ``sessions`` (export, import,
delete on a ``SessionStore``), ``middleware`` (the headers and the revision),
``views`` and ``urls`` (the internal endpoints).
"""

__version__ = "0.1.0"
