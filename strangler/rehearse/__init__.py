"""Rehearsals and drills: scripted cutover stages under synthetic load, gated by SLOs."""
