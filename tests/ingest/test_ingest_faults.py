"""Checklist scenario 11 (issue 17): the database dies between the batch's inserts and its
commit. The server must never answer 2xx for it, nothing of it may be stored, and the
collector's retry (same key, same body) is then stored whole."""

from __future__ import annotations

import orjson
import psycopg
import pytest
from django.db import connection, connections
from django.test import Client

from greenkpi.ingest import writers
from greenkpi.ingest.models import IngestBatch, Sample
from greenkpi.inventory.models import Host

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def post(secret: str, body: bytes, key: str):
    return Client(raise_request_exception=False).post(
        "/api/v1/ingest/",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_the_database_killed_before_commit_is_never_a_2xx(acme_token, make_batch, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("needs DATABASE_URL=postgres://... (a skip fails the run under CI=true)")
    from greenkpi.kpis import dirty

    _, secret = acme_token
    killed: list[int] = []
    real_copy = writers._copy
    real_statement = dirty.mark_dirty_statement
    wrapper = type(connections["default"])
    real_commit = wrapper._commit

    def copy_then_arm(cur, table, *args):
        real_copy(cur, table, *args)
        if table == Sample._meta.db_table and not killed:
            killed.append(0)  # armed: what comes next is this batch's commit

    def kill() -> None:
        if killed == [0]:
            pid = connection.connection.info.backend_pid
            settings = connection.settings_dict
            url = f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            killed[0] = pid

    # The COMMIT goes in the query string that also marks the hours dirty (services._finish), or
    # through Django's commit: the backend dies just before whichever comes first.
    def kill_then_statement(**kwargs):
        kill()
        return real_statement(**kwargs)

    def kill_then_commit(self):
        kill()
        return real_commit(self)

    monkeypatch.setattr(writers, "_copy", copy_then_arm)
    monkeypatch.setattr(dirty, "mark_dirty_statement", kill_then_statement)
    monkeypatch.setattr(wrapper, "_commit", kill_then_commit)
    body = orjson.dumps(make_batch(devices=2, windows=3))
    response = post(secret, body, "k-11")
    assert killed and killed[0] > 0, "the fault hook never fired"
    assert response.status_code >= 500, response.content
    connection.close()  # the killed connection; the next query opens a fresh one
    assert (Sample.objects.count(), IngestBatch.objects.count(), Host.objects.count()) == (0, 0, 0)

    monkeypatch.setattr(writers, "_copy", real_copy)
    monkeypatch.setattr(dirty, "mark_dirty_statement", real_statement)
    monkeypatch.setattr(wrapper, "_commit", real_commit)
    retried = post(secret, body, "k-11")
    assert retried.status_code == 201, retried.content
    assert retried.json()["accepted"] == 6
    assert Sample.objects.count() == 6
