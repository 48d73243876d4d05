"""Pipeline: one request from the listener's door to its answer.

screen -> route -> decide -> session -> forward -> respond -> observe, each stage
a small unit (``chain`` runs them in order).
"""
