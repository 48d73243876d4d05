"""Worked examples: monoliths in real frameworks migrated with Strangler."""
