"""Re-exports ``testkit.checks`` (shared with bench/ and rehearsals)."""

from testkit.checks import Answer, expect, expect_response

__all__ = ["Answer", "expect", "expect_response"]
