"""Probe workers: run checks on their schedule and publish check results."""
