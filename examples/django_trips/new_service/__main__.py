"""``python -m examples.django_trips.new_service --port P ...``."""

import sys

from .cli import main

sys.exit(main())
