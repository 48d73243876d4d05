"""WSGI entry: ``python -m gunicorn --workers 1 --threads 8 trips.wsgi`` (one node a process)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trips.settings")
application = get_wsgi_application()
