"""Re-exports ``testkit.shop`` (moved there, shared with bench/ and rehearsals)."""

from testkit.browser import Reply
from testkit.shop import (
    Admin,
    ShopUser,
    cart_lines,
)

__all__ = ["Admin", "Reply", "ShopUser", "cart_lines"]
