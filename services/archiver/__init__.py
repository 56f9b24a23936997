"""Archiver: writes check results, alert events and deliveries to PostgreSQL."""
