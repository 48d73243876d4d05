"""``python -m legacy_shop`` -- see ``legacy_shop.cli``."""

from __future__ import annotations

from legacy_shop.cli import main

raise SystemExit(main())
