"""What the PostgreSQL benchmarks share: a throw-away database migrated by manage.py, and Django
set up against it in the benchmark's own process (never the developer's DATABASE_URL or Redis)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def url_of(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def recreate_database(name: str, var_dir: str) -> None:
    """Drop and create ``name``, then migrate it."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    env = {**os.environ, "DATABASE_URL": url_of(name), "GREENKPI_VAR_DIR": var_dir}
    env.pop("REDIS_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True
    )


def setup_django(name: str, var_dir: str) -> None:
    os.environ["DATABASE_URL"] = url_of(name)
    os.environ["GREENKPI_VAR_DIR"] = var_dir
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "greenkpi.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
