"""The per-token rate limit, on the real Redis cache (an atomic INCR)."""

from __future__ import annotations

import os
import threading

import pytest
from django.core.cache import cache
from django.db import connections
from django.test import Client

from greenkpi.ingest.models import Sample

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _redis_cache(settings):
    url = os.environ.get("REDIS_URL")
    assert url, "this layer runs with REDIS_URL=redis://..."
    settings.CACHES = {
        **settings.CACHES,  # the read layer's own alias stays (kpis/read/cache.py)
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": f"test-rate-{os.getpid()}",
        },
    }
    cache.clear()
    yield
    cache.clear()


def test_concurrent_requests_over_the_limit_get_429_with_retry_after(
    settings, acme_token, globex_token, make_batch
):
    settings.INGEST_RATE_PER_MINUTE = 5
    import orjson

    _, secret = acme_token
    statuses: list[tuple[int, str | None]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def send(i: int) -> None:
        body = orjson.dumps(make_batch(hostname=f"h{i}", devices=1, windows=1))
        barrier.wait()
        response = Client().post(
            "/api/v1/ingest/",
            body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
            HTTP_IDEMPOTENCY_KEY=f"k{i}",
        )
        connections.close_all()
        with lock:
            statuses.append((response.status_code, response.get("Retry-After")))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ok = [s for s in statuses if s[0] == 201]
    limited = [s for s in statuses if s[0] == 429]
    assert len(ok) == 5
    assert len(limited) == 7
    assert all(1 <= int(retry) <= 61 for _, retry in limited)
    assert Sample.objects.count() == 5
    # Another organisation's collector is unaffected.
    other = Client().post(
        "/api/v1/ingest/",
        orjson.dumps(make_batch(devices=1, windows=1)),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {globex_token[1]}",
        HTTP_IDEMPOTENCY_KEY="g",
    )
    assert other.status_code == 201


def test_the_counter_goes_through_one_kept_client_and_reads_back_as_an_int():
    from django.core.cache import caches

    from greenkpi.ingest.auth import count_request

    assert count_request("ingest-rate:test", timeout=60) == 1
    kept = caches["default"].__dict__["_greenkpi_write_client"]
    assert count_request("ingest-rate:test", timeout=60) == 2
    assert caches["default"].__dict__["_greenkpi_write_client"] is kept  # not rebuilt per call
    assert cache.get("ingest-rate:test") == 2
