"""Every metric the gateway exports is in the README's Metrics table, and nothing more."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.observe.metrics import Metrics

README = Path(__file__).resolve().parents[2] / "README.md"


def _documented() -> set[str]:
    text = README.read_text()
    section = text[text.index("### Metrics"):]
    section = section[:section.index("\n## ")]
    return set(re.findall(r"`(strangler_[a-z_*]+)`", section))


def _exported() -> set[str]:
    names = set()
    for metric in Metrics().registry.collect():
        name = metric.name
        if metric.type == "counter":
            name += "_total"
        names.add(name)
    return names


def test_every_exported_metric_is_documented() -> None:
    documented = _documented()
    wildcards = [d[:-1] for d in documented if d.endswith("*")]
    missing = {n for n in _exported()
               if n not in documented and not any(n.startswith(w) for w in wildcards)}
    assert not missing, f"metrics missing from README's Metrics table: {sorted(missing)}"


def test_every_documented_metric_is_exported() -> None:
    exported = _exported()
    stale = {d for d in _documented() if not d.endswith("*") and d not in exported}
    assert not stale, f"README documents metrics the gateway does not export: {sorted(stale)}"
