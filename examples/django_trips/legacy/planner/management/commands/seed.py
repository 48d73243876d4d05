"""``python manage.py seed``: the demo users and the ten destinations (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from planner.models import Destination, User

PASSWORD = "trips-demo"  # noqa: S105 (the demo's published password)
USERS = [("ann", "Ann Lee"), ("ben", "Ben Okafor"), ("cat", "Cat Nguyen"), ("dan", "Dan Ruiz")]
DESTINATIONS = [
    ("lisbon", "Lisbon", "Portugal", 129900),
    ("kyoto", "Kyoto", "Japan", 249900),
    ("reykjavik", "Reykjavik", "Iceland", 189950),
    ("marrakesh", "Marrakesh", "Morocco", 99900),
    ("cusco", "Cusco", "Peru", 174500),
    ("hanoi", "Hanoi", "Vietnam", 139900),
    ("cape-town", "Cape Town", "South Africa", 219900),
    ("tromso", "Tromso", "Norway", 159900),
    ("oaxaca", "Oaxaca", "Mexico", 119900),
    ("tbilisi", "Tbilisi", "Georgia", 89900),
]


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type stubs
    help = "Create the demo users and destinations; running it again changes nothing."

    def handle(self, *args: Any, **options: Any) -> None:
        made = 0
        with transaction.atomic():
            for username, name in USERS:
                user, created = User.objects.get_or_create(
                    username=username, defaults={"display_name": name})
                if created:
                    user.set_password(PASSWORD)
                    user.save(update_fields=["password"])
                    made += 1
            for slug, name, country, cents in DESTINATIONS:
                _, created = Destination.objects.get_or_create(
                    slug=slug, defaults={"name": name, "country": country,
                                         "price_cents": cents})
                made += created
        self.stdout.write(f"seed: {made} rows created, {len(USERS)} users and "
                          f"{len(DESTINATIONS)} destinations present")
