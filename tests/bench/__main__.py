"""Run every benchmark against freshly started local servers and print one table."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import pkgutil
import platform
import shutil
import subprocess
import tempfile
from datetime import date
from pathlib import Path

import psycopg

from services.archiver.migrate import upgrade
from shared.localservers import LocalPostgres, LocalRedis
from tests import bench
from tests.bench.framework import BenchEnv, Row


def _modules(only: list[str]) -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")]
    return [n for n in sorted(names) if not only or any(o in n for o in only)]


def _table(rows: list[Row]) -> str:
    lines = ["| metric | value | goal | verdict | note |", "|---|---|---|---|---|"]
    for r in rows:
        goal = "" if r.goal is None else f"{'≥' if r.higher_is_better else '≤'} {r.goal:,.0f}"
        lines.append(f"| {r.metric} | {r.value:,.1f} {r.unit} | {goal} | {r.verdict} | {r.note} |")
    return "\n".join(lines)


async def _run(env: BenchEnv, modules: list[str]) -> list[Row]:
    rows: list[Row] = []
    for name in modules:
        module = importlib.import_module(f"tests.bench.{name}")
        print(f"running {name} ...", flush=True)
        rows += await module.run(env)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke)")
    parser.add_argument("--write", metavar="FILE", help="also write the table to FILE (markdown)")
    parser.add_argument("only", nargs="*", help="run only benchmarks whose name contains this")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    base.chmod(0o755)
    try:
        with (
            LocalRedis(base / "redis", aof=False).start() as redis,
            LocalPostgres(base / "postgres").start() as pg,
        ):
            upgrade(pg.url)
            with psycopg.connect(pg.url) as conn:
                version = conn.execute("show server_version").fetchone()
            redis_version = (
                subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
                .stdout.split()[2]
                .removeprefix("v=")
            )
            env = BenchEnv(redis.url, pg.url, args.quick)
            rows = asyncio.run(_run(env, _modules(args.only)))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    machine = (
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"PostgreSQL {version[0] if version else '?'}, Redis {redis_version}"
    )
    table = _table(rows)
    print(f"\n{machine}\n{table}")
    if args.write:
        _write(Path(args.write), machine, table)


START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _write(path: Path, machine: str, table: str) -> None:
    """Replace the generated block of ``path``; the hand-written notes around it stay."""
    block = (
        f"{START}\nWritten by `make bench` on {date.today()}: {machine}.\n"
        "Figures move by up to ±40 % between runs on these shared machines.\n\n"
        f"{table}\n{END}"
    )
    old = path.read_text() if path.exists() else ""
    if START in old and END in old:
        head, rest = old.split(START, 1)
        path.write_text(head + block + rest.split(END, 1)[1])
    else:
        path.write_text(f"# Performance\n\n{block}\n")


if __name__ == "__main__":
    main()
