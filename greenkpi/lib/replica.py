"""A read replica for the dashboards (``DATABASE_REPLICA_URL``; docs/scaling.md, "Read replica").

Unset, nothing here does anything: there is no ``replica`` alias, ``read_alias()`` is always
``default`` and settings install neither the router nor the middleware.

Set, the rule is **opt-in, never guessed**: the read layer (``greenkpi/kpis/read/``: the rollup
sums and their freshness, what every page, chart, API read and budget figure is made of) asks
``read_alias()`` for every query it runs (an explicit ``.using()``), and the answer is the
replica only when all of these hold:

* the current request is a web request that may read it (``ReplicaReadsMiddleware``): a GET,
  HEAD or OPTIONS of a browser that has not written within ``DATABASE_REPLICA_PIN_S`` seconds;
* no transaction is open on the primary (a read inside a writing transaction must see the
  transaction's own writes).

Everything else stays on the primary: ingest, rollups, retention, migrations, the admin, sessions
and authentication, alert evaluation and every Celery task (no request, so no opt-in), and every
query outside the read layer. Why explicit ``.using()`` rather than a router's ``db_for_read``:
a router sees a model, not a purpose; it would send the worker's read-modify-write of
``RollupWindow`` or a session lookup to the replica as readily as a chart's sums, and each such
mistake is a stale read in code that must not have one. The router below only makes sure nothing
is ever *written* to the replica (an object read from it and saved goes to the primary) and that
nothing migrates it.

**Lag**: pages say nothing new about it (each figure already shows its freshness, and a replica
seconds behind looks like a rollup seconds later). A write-then-read flow must not show stale
data: after any unsafe request (POST, PUT, PATCH, DELETE: a form that saves, then redirects to a
page) the response to a browser sets a short cookie that pins its reads to the primary for
``DATABASE_REPLICA_PIN_S`` seconds (default 10, well above a healthy replica's lag). API clients
without cookies that read right after they write send ``X-Read-Primary: 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpRequest, HttpResponse

REPLICA = "replica"
PIN_COOKIE = "gk_read_primary"
PIN_HEADER = "HTTP_X_READ_PRIMARY"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_READS: ContextVar[bool] = ContextVar("greenkpi_replica_reads", default=False)


def configured() -> bool:
    return REPLICA in settings.DATABASES


def read_alias() -> str:
    """The alias the read layer's next query goes to (module docstring)."""
    if not _READS.get() or not configured():
        return DEFAULT_DB_ALIAS
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS
    return REPLICA


@contextmanager
def replica_reads(allowed: bool = True) -> Iterator[None]:
    """Inside the block the read layer may read the replica (``allowed=False`` forbids it)."""
    token = _READS.set(allowed)
    try:
        yield
    finally:
        _READS.reset(token)


class PrimaryReplicaRouter:
    """Writes and migrations on the primary only; reads where the caller said (default: primary)."""

    def db_for_read(self, model: type, **hints: Any) -> str | None:
        return None  # the caller's .using(), else the instance's own database, else default

    def db_for_write(self, model: type, **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # the replica holds the primary's rows

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS


class ReplicaReadsMiddleware:
    """Lets a request's read layer use the replica (safe methods, not pinned) and pins a browser
    to the primary for a while after it wrote."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        writes = request.method not in SAFE_METHODS
        pinned = PIN_COOKIE in request.COOKIES or request.META.get(PIN_HEADER, "") == "1"
        with replica_reads(not writes and not pinned):
            response = self.get_response(request)
        pin_s = int(getattr(settings, "DATABASE_REPLICA_PIN_S", 10))
        # Browsers only: a collector's or API client's bearer-token POST has no cookie jar (API
        # clients that read what they wrote send X-Read-Primary).
        if writes and pin_s > 0 and "HTTP_AUTHORIZATION" not in request.META:
            response.set_cookie(
                PIN_COOKIE,
                "1",
                max_age=pin_s,
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        return response
