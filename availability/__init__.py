"""Availability: common free time across organizer and attendees."""
