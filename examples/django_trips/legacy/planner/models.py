"""Users (UUID primary key), destinations and bookings: the tables Django owns.

The new service reads ``planner_destination`` (read-only); bookings stay on
Django, made idempotent by a unique (user, idempotency key) constraint.
"""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):  # type: ignore[misc]  # Django ships no type stubs
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    display_name = models.CharField(max_length=100, blank=True)

    def as_json(self) -> dict[str, str]:
        return {"id": str(self.id), "username": self.username,
                "name": self.display_name or self.username}


class Destination(models.Model):  # type: ignore[misc]  # Django ships no type stubs
    slug = models.CharField(primary_key=True, max_length=40)
    name = models.CharField(max_length=100)
    country = models.CharField(max_length=100)
    price_cents = models.IntegerField()

    def as_json(self) -> dict[str, str]:
        return {"slug": self.slug, "name": self.name, "country": self.country,
                "price": f"{self.price_cents // 100}.{self.price_cents % 100:02d}"}


class Booking(models.Model):  # type: ignore[misc]  # Django ships no type stubs
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="bookings")
    destination = models.CharField(max_length=40, null=True)
    answers = models.JSONField()
    created_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=255, null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "idempotency_key"],
                                               name="booking_user_key_unique")]

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "destination": self.destination, "answers": self.answers,
                "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")}
