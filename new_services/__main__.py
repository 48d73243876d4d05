"""``python -m new_services serve ...``"""

from __future__ import annotations

from new_services.cli import main

raise SystemExit(main())
