"""Re-exports ``testkit.shop`` (moved there, shared with bench/ and rehearsals)."""

from testkit.shop import (
    Admin,
    Reply,
    ShopUser,
    cart_lines,
)

__all__ = ["Admin", "Reply", "ShopUser", "cart_lines"]
