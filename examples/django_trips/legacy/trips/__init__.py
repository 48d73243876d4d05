"""The trips project: settings, URLs and the WSGI entry of the Django example monolith."""
