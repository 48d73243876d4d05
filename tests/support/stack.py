"""Re-exports ``testkit.stack`` (moved there, shared with bench/ and rehearsals)."""

from testkit.stack import (
    DEFAULT_ROUTES,
    SHOP_SERVICES,
    Stack,
    db_orders,
)

__all__ = ["DEFAULT_ROUTES", "SHOP_SERVICES", "Stack", "db_orders"]
