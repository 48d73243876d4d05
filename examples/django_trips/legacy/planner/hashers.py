"""A cheaper PBKDF2 for the demo's known passwords, so rehearsals can log in many users
on a small machine. A real deployment keeps Django's default hasher."""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class DemoPBKDF2PasswordHasher(PBKDF2PasswordHasher):  # type: ignore[misc]  # Django ships no type stubs
    algorithm = "pbkdf2_sha256_demo"
    iterations = 20_000
