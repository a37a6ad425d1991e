"""DRF authentication and throttling for collector tokens."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import InterfaceError, OperationalError, connection
from rest_framework import authentication, exceptions, throttling
from rest_framework.request import Request

from greenkpi.inventory.models import CollectorToken
from greenkpi.inventory.selectors import collector_token_authenticate


class CollectorPrincipal:
    """What request.user is for a collector: not a Django user, and never allowed to read."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, token: CollectorToken):
        self.token = token

    def __str__(self) -> str:
        return f"collector token {self.token.prefix}"


class CollectorTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer gkc_...``. Used only on ingest endpoints."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[CollectorPrincipal, CollectorToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'")
        return self.authenticate_value(header[1])

    def authenticate_value(self, value: str) -> tuple[CollectorPrincipal, CollectorToken]:
        token = token_lookup_checking_connection(value)
        if token is None:
            raise exceptions.AuthenticationFailed("invalid, expired or revoked collector token")
        return CollectorPrincipal(token), token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


def token_lookup_checking_connection(value: str) -> CollectorToken | None:
    """``collector_token_authenticate``, its query standing in for Django's connection health check.

    With ``CONN_HEALTH_CHECKS`` Django sends ``SELECT 1`` before a request's first query on a
    persistent connection, a round trip of its own on every ingest request. The token lookup is
    that first query: if the connection died since the last request (a database restart, an idle
    timeout), it fails, the connection is replaced and the lookup (a read) runs once more, which is
    what the health check would have done, without the extra round trip when all is well.
    """
    if (
        connection.connection is None
        or not connection.health_check_enabled
        or connection.health_check_done
        or connection.in_atomic_block
    ):
        return collector_token_authenticate(value)
    connection.health_check_done = True
    try:
        return collector_token_authenticate(value)
    except (OperationalError, InterfaceError):
        connection.close()
        return collector_token_authenticate(value)


class HasCollectorToken:
    """Permission: the request was authenticated by a collector token."""

    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.auth, CollectorToken)

    def has_object_permission(self, request: Request, view: object, obj: object) -> bool:
        return False


class CollectorTokenRateThrottle(throttling.BaseThrottle):
    """A fixed one-minute window per token, counted with an atomic cache increment.

    DRF's SimpleRateThrottle reads, appends and writes a history list, which concurrent requests
    race past (encode/django-rest-framework#8127); Redis INCR does not.
    """

    window_s = 60

    def allow_request(self, request: Request, view: object) -> bool:
        token = request.auth
        if not isinstance(token, CollectorToken):
            return True
        now = time.time()
        window = int(now // self.window_s)
        count = count_request(f"ingest-rate:{token.pk}:{window}", timeout=self.window_s + 5)
        self._wait = (window + 1) * self.window_s - now
        return count <= settings.INGEST_RATE_PER_MINUTE

    def wait(self) -> float:
        return max(1.0, self._wait)


def count_request(key: str, *, timeout: int) -> int:
    """Add one to the counter ``key`` (created with ``timeout``) and return its new value.

    On Redis, one round trip: SET NX EX and INCR pipelined (Django's ``add`` + ``incr`` cost three,
    its ``incr`` checking EXISTS first). The counter is a plain integer, as Django's Redis cache
    stores ints, so ``cache.get`` reads it. Other caches (tests, the file cache) add and incr.
    """
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        real_key = backend.make_and_validate_key(key)
        client = _write_client(backend)
        with client.pipeline(transaction=False) as pipe:
            pipe.set(real_key, 0, ex=timeout, nx=True)
            pipe.incr(real_key)
            return int(pipe.execute()[1])
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=timeout)
        return 1


def _write_client(backend: RedisCache) -> Any:
    """The backend's Redis client for writes, made once per backend instance.

    Django's ``get_client`` builds a new ``redis.Redis`` on every call (around its shared
    connection pool), and redis-py's constructor copies ~170 response callbacks into a
    case-insensitive dict: ~50 us of CPU per ingest request, a third of the limiter's. The
    backend instance is per thread (``caches`` hands each thread its own) and a write always goes
    to the first server, so the one client kept here is the one ``get_client`` would build.
    """
    client = backend.__dict__.get("_greenkpi_write_client")
    if client is None:
        client = backend.__dict__["_greenkpi_write_client"] = backend._cache.get_client(write=True)
    return client
