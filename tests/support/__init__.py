"""Real local servers and helpers for the tests."""
