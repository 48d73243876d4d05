"""planner: the trip planner app (users, destinations, bookings, the session-held state)."""
