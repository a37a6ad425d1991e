"""Through a real HTTP server (pytest-django's live_server), not only the test client."""

from __future__ import annotations

import gzip
import http.client
import urllib.parse
import uuid

import orjson
import pytest

from greenkpi.ingest.models import Sample

pytestmark = pytest.mark.django_db(transaction=True)


def http_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("POST", parts.path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_a_gzipped_batch_posted_over_http_is_stored_and_replayable(
    live_server, acme_token, make_batch
):
    _, secret = acme_token
    body = gzip.compress(orjson.dumps(make_batch(devices=3, windows=20)))
    headers = {
        "Authorization": f"Bearer {secret}",
        "Idempotency-Key": str(uuid.uuid4()),
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    status, _, content = http_post(f"{live_server.url}/api/v1/ingest/", body, headers)
    assert status == 201, content
    assert orjson.loads(content)["accepted"] == 60
    status, response_headers, again = http_post(f"{live_server.url}/api/v1/ingest/", body, headers)
    assert status == 201
    assert response_headers.get("Idempotent-Replayed") == "true"
    assert orjson.loads(again) == orjson.loads(content)
    assert Sample.objects.count() == 60


def test_an_oversized_declared_body_is_refused_before_it_is_read(live_server, acme_token, settings):
    settings.INGEST_MAX_BODY_BYTES = 10_000
    _, secret = acme_token
    status, _, content = http_post(
        f"{live_server.url}/api/v1/ingest/",
        b"x" * 20_000,
        {
            "Authorization": f"Bearer {secret}",
            "Idempotency-Key": "k",
            "Content-Type": "application/json",
        },
    )
    assert status == 413
    assert orjson.loads(content)["status"] == 413
