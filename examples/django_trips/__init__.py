"""The Django trip planner (CONTRACT.md): its legacy project, its new service, its config."""
