"""Benchmarks: ``make bench`` (``python -m tests.bench [--quick]``).

Every module ``tests/bench/bench_*.py`` defines ``async def run(env: BenchEnv) -> list[Row]``.
Benchmarks print figures; they are not timed tests and never fail on speed.
"""
