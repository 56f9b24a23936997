"""One module per rule type; ``services/evaluator/rules.py`` is the registry."""
