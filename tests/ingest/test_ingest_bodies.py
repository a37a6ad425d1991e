"""Issue 17: how both ingest endpoints read bodies. Chunked bodies are read (with the same byte
limits) where the server de-chunks them, else 411; anything but application/json is 415."""

from __future__ import annotations

import http.client
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from django.test import Client

from greenkpi.ingest.models import Sample

DATA = Path(__file__).parent / "data"


def codecarbon_report() -> dict:
    report = json.loads((DATA / "codecarbon_3.3.2.json").read_text())
    # CodeCarbon sends local time without a zone; UTC is one of the zones the server accepts.
    at = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=5)
    report["timestamp"] = at.isoformat(timespec="seconds")
    return report


def endpoints(secret: str, batch: dict) -> dict[str, tuple[dict, bytes]]:
    """Each ingest endpoint: its path -> (headers as WSGI extra, a valid body)."""
    return {
        "/api/v1/ingest/": (
            {"HTTP_AUTHORIZATION": f"Bearer {secret}", "HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())},
            orjson.dumps(batch),
        ),
        f"/api/v1/ingest/codecarbon/{secret}/": ({}, orjson.dumps(codecarbon_report())),
    }


def post_chunked_in_process(path: str, body: bytes, terminated: bool, **extra):
    """A WSGI request with no Content-Length and Transfer-Encoding: chunked, as gunicorn hands
    it over (de-chunked, wsgi.input_terminated) or as a server that does not de-chunk would."""
    return Client().post(
        path,
        body,
        content_type="application/json",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(body)},
        **({"wsgi.input_terminated": True} if terminated else {}),
        **extra,
    )


@pytest.mark.django_db
def test_a_chunked_body_is_read_when_the_server_dechunks_it(acme_token, make_batch):
    _, secret = acme_token
    for path, (headers, body) in endpoints(secret, make_batch(devices=1, windows=2)).items():
        response = post_chunked_in_process(path, body, terminated=True, **headers)
        assert response.status_code == 201, (path, response.content)
        answer = response.json()
        assert answer.get("accepted") == 2 or answer.get("stored") is True, answer
    assert Sample.objects.count() > 2  # the batch, and CodeCarbon's cpu/gpu/dram windows


@pytest.mark.django_db
def test_a_chunked_body_the_server_cannot_read_is_411_not_empty(acme_token, make_batch):
    _, secret = acme_token
    for path, (headers, body) in endpoints(secret, make_batch()).items():
        response = post_chunked_in_process(path, body, terminated=False, **headers)
        assert response.status_code == 411, (path, response.content)
        assert response["Content-Type"] == "application/problem+json"
    assert Sample.objects.count() == 0


@pytest.mark.django_db
def test_a_chunked_body_over_the_limit_is_413(acme_token, make_batch, settings):
    settings.INGEST_MAX_BODY_BYTES = 2_000
    _, secret = acme_token
    for path, (headers, _) in endpoints(secret, make_batch()).items():
        response = post_chunked_in_process(path, b" " * 70_000, terminated=True, **headers)
        assert response.status_code == 413, (path, response.content)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "multipart/form-data; boundary=x",
        "",
    ],
)
def test_anything_but_json_is_415_on_both_endpoints(acme_token, make_batch, content_type):
    _, secret = acme_token
    for path, (headers, body) in endpoints(secret, make_batch()).items():
        response = Client().generic(
            "POST", path, body, content_type=content_type or None, **headers
        )
        assert response.status_code == 415, (path, content_type, response.content)
        assert response["Content-Type"] == "application/problem+json"
        assert "application/json" in response.json()["detail"]
    assert Sample.objects.count() == 0


@pytest.mark.django_db
def test_json_with_a_charset_is_accepted(acme_token, make_batch):
    _, secret = acme_token
    for path, (headers, body) in endpoints(secret, make_batch(devices=1, windows=1)).items():
        response = Client().generic(
            "POST", path, body, content_type="Application/JSON; charset=utf-8", **headers
        )
        assert response.status_code == 201, (path, response.content)


def test_codecarbon_s_recorded_client_sends_json():
    """The decision above rests on this: every CodeCarbon release posts with
    ``requests.post(url, json=payload)``, which sends Content-Type: application/json (and the
    recorded payloads are JSON objects)."""
    for path in DATA.glob("codecarbon_*.json"):
        assert isinstance(json.loads(path.read_text()), dict), path


# --- behind a real gunicorn ---------------------------------------------------------------


@pytest.fixture
def gunicorn_server(transactional_db, tmp_path, settings):
    from django.db import connection
    from testsupport.celery_workers import worker_env
    from testsupport.gunicorn import running

    if connection.vendor != "postgresql":
        pytest.skip("gunicorn needs the live PostgreSQL test database (a skip fails CI)")
    env = worker_env(tmp_path, None)
    env["INGEST_MAX_BODY_BYTES"] = "200000"
    with running(env, tmp_path / "gunicorn.log", workers=1) as server:
        yield server


def chunked_post(port: int, path: str, body: bytes, headers: dict[str, str]):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        pieces = iter([body[i : i + 1000] for i in range(0, len(body), 1000)])
        conn.request("POST", path, body=pieces, headers=headers, encode_chunked=True)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_chunked_bodies_through_gunicorn(gunicorn_server, acme_token, make_batch):
    _, secret = acme_token
    batch = make_batch(devices=2, windows=10)
    for path, (extra, body) in endpoints(secret, batch).items():
        headers = {"Content-Type": "application/json"}
        if "HTTP_AUTHORIZATION" in extra:
            headers["Authorization"] = extra["HTTP_AUTHORIZATION"]
            headers["Idempotency-Key"] = extra["HTTP_IDEMPOTENCY_KEY"]
        status, content = chunked_post(gunicorn_server.port, path, body, headers)
        assert status == 201, (path, content)
        answer = orjson.loads(content)
        assert answer.get("accepted") == 20 or answer.get("stored") is True, answer
        # Over the limit (200 kB for the batch, 64 KiB for CodeCarbon) and chunked: still 413.
        headers["Idempotency-Key"] = str(uuid.uuid4())
        status, content = chunked_post(gunicorn_server.port, path, b" " * 300_000, headers)
        assert status == 413, (path, content)
    assert Sample.objects.count() > 20
