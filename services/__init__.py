"""Vigil's four stream services: probe, evaluator, notifier, archiver."""
