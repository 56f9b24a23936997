"""Evaluator: turns check results into alert events (firing, resolved)."""
