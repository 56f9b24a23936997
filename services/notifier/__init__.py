"""Notifier: routes alert events to channels, with retries and delivery records."""
