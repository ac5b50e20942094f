"""Bookings: create, read back and cancel the meetings this service books."""
