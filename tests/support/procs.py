"""Re-exports ``testkit.procs`` (moved there, shared with bench/ and rehearsals)."""

from testkit.procs import (
    ROOT,
    Proc,
    http_ok,
    python_module,
)

__all__ = ["ROOT", "Proc", "http_ok", "python_module"]
