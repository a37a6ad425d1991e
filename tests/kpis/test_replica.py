"""Read replica (DATABASE_REPLICA_URL, greenkpi/lib/replica.py) on PostgreSQL.

The stand-in replica is a real second database: a copy of the test database taken with
``CREATE DATABASE ... TEMPLATE`` after a first batch was rolled up, i.e. a replica that then stops
replaying. A second batch goes to the primary only, so every read says which database answered:
the replica's figure is the first batch's energy, the primary's both batches'.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, router, transaction
from django.db.models import Sum
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from greenkpi.inventory.models import Team
from greenkpi.kpis import services
from greenkpi.kpis.models import HourlyRollup
from greenkpi.kpis.read import sums as read
from greenkpi.lib import replica

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
ROLLUP_TABLES = (
    "kpis_hourlyrollup",
    "kpis_dailyteamrollup",
    "kpis_dailyrollup",
    "kpis_rollupwindow",
)


def _admin() -> psycopg.Connection:
    """An autocommit connection to the server's ``postgres`` database, for CREATE/DROP DATABASE."""
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )


def copy_database(source: str, target: str) -> None:
    """``target`` as a snapshot of ``source`` (no session may be connected to ``source``)."""
    connections.close_all()
    with _admin() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [source],
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{target}"')
        admin.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')


def drop_database(name: str) -> None:
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def world(acme, acme_token, people, post_batch, make_batch):
    """First batch rolled up and copied to the replica; the second on the primary only.
    Returns (organisation, hour, replica kWh, primary kWh)."""
    _, secret = acme_token
    hour = services.hour_floor(datetime.now(UTC) - timedelta(hours=3))
    first = make_batch(hostname="gpu-a", devices=2, windows=3, start=hour, energy_j=36_000.0)
    assert post_batch(secret, first).status_code == 201
    services.windows_recompute_dirty()
    name = connection.settings_dict["NAME"]
    target = f"{name}_replica"
    copy_database(name, target)
    second = make_batch(hostname="gpu-b", devices=1, windows=3, start=hour, energy_j=72_000.0)
    assert post_batch(secret, second).status_code == 201
    services.windows_recompute_dirty()
    primary = HourlyRollup.objects.aggregate(k=Sum("energy_kwh"))["k"]

    alias = {**connection.settings_dict, "NAME": target}
    settings.DATABASES[replica.REPLICA] = alias  # the same dict as connections.settings
    # Connected here, by hand: the test case only lets aliases it was declared with connect on
    # their own, and this one did not exist when it was set up.
    connections[replica.REPLICA].connect()
    try:
        yield acme, hour, 6 * 36_000.0 / 3.6e6, primary
    finally:
        connections[replica.REPLICA].close()
        del connections[replica.REPLICA]
        del settings.DATABASES[replica.REPLICA]
        drop_database(target)


def org_kwh(organisation, hour) -> float:
    frame = read.sums(
        organisation_id=organisation.pk,
        start=hour,
        end=hour + timedelta(hours=1),
        columns=["energy_kwh"],
    )
    return float(frame["energy_kwh"].sum())


def api_kwh(client, organisation, hour, **headers) -> float:
    day = hour.date()
    params = {"org": organisation.slug, "from": str(day), "to": str(day + timedelta(days=1))}
    response = client.get("/api/v1/kpis/series/", params, **headers)
    assert response.status_code == 200, response.content
    return sum(row["energy_kwh"] for row in response.json()["results"])


def test_the_read_layer_reads_the_replica_only_where_a_request_allows_it_and_never_writes(world):
    org, hour, on_replica, on_primary = world
    assert on_primary == pytest.approx(on_replica + 3 * 72_000.0 / 3.6e6)

    # Workers, commands, anything without a request: the primary.
    assert replica.read_alias() == DEFAULT_DB_ALIAS
    assert org_kwh(org, hour) == pytest.approx(on_primary)
    with replica.replica_reads():
        assert replica.read_alias() == replica.REPLICA
        with (
            CaptureQueriesContext(connections[replica.REPLICA]) as far,
            CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as near,
        ):
            assert org_kwh(org, hour) == pytest.approx(on_replica)
        assert far.captured_queries and not near.captured_queries
        # A read inside a transaction on the primary must see the transaction's own writes.
        with transaction.atomic():
            assert replica.read_alias() == DEFAULT_DB_ALIAS
            assert org_kwh(org, hour) == pytest.approx(on_primary)

    # Nothing is written to or migrated on the replica.
    team = Team.objects.using(replica.REPLICA).get(organisation=org, slug="vision")
    # Django alone would save a row read from the replica back to the replica.
    assert router.db_for_write(Team, instance=team) == replica.REPLICA
    the_router = replica.PrimaryReplicaRouter()
    assert the_router.allow_migrate(replica.REPLICA, "kpis") is False
    assert the_router.allow_migrate(DEFAULT_DB_ALIAS, "kpis") is True
    with override_settings(DATABASE_ROUTERS=["greenkpi.lib.replica.PrimaryReplicaRouter"]):
        assert router.db_for_write(Team, instance=team) == DEFAULT_DB_ALIAS
        team.name = "Vision (renamed)"
        team.save(update_fields=["name"])
    assert Team.objects.get(pk=team.pk).name == "Vision (renamed)"
    assert Team.objects.using(replica.REPLICA).get(pk=team.pk).name == "Vision"


def test_pages_read_the_replica_and_a_write_pins_the_browser_to_the_primary(
    world, people, acme_token, make_batch
):
    org, hour, on_replica, on_primary = world
    middleware = [*settings.MIDDLEWARE, "greenkpi.lib.replica.ReplicaReadsMiddleware"]
    with override_settings(MIDDLEWARE=middleware):
        client = Client()  # its middleware is loaded at its first request: with the override
        client.force_login(people["alice"])
        with (
            CaptureQueriesContext(connections[replica.REPLICA]) as far,
            CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as near,
        ):
            assert api_kwh(client, org, hour) == pytest.approx(on_replica)
        assert any(t in q["sql"] for q in far.captured_queries for t in ROLLUP_TABLES)
        # sessions, users, memberships stay on the primary; the rollups are not read there
        assert near.captured_queries
        assert not any(t in q["sql"] for q in near.captured_queries for t in ROLLUP_TABLES)

        # A form that writes, then a page: the login POST redirects, and what follows is read
        # from the primary while the pin lasts.
        answer = client.post(
            "/accounts/login/", {"username": "alice", "password": people["password"]}
        )
        assert answer.status_code == 302
        pin = answer.cookies[replica.PIN_COOKIE]
        assert pin["max-age"] == settings.DATABASE_REPLICA_PIN_S == 10
        assert api_kwh(client, org, hour) == pytest.approx(on_primary)
        del client.cookies[replica.PIN_COOKIE]  # the pin expired
        assert api_kwh(client, org, hour) == pytest.approx(on_replica)
        # a collector's POST (bearer token, no cookie jar) gets no pin
        posted = client.post(
            "/api/v1/ingest/",
            orjson.dumps(make_batch(hostname="gpu-c", windows=1, start=hour)),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {acme_token[1]}",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
        assert posted.status_code == 201 and replica.PIN_COOKIE not in posted.cookies
        # an API client without cookies asks for the primary by header
        assert api_kwh(client, org, hour, HTTP_X_READ_PRIMARY="1") == pytest.approx(on_primary)


def settings_of(**env: str) -> subprocess.CompletedProcess:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(sorted(s.DATABASES), s.DATABASE_ROUTERS, s.MIDDLEWARE[-1])"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "greenkpi.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_setting_adds_the_alias_router_and_middleware_and_unset_changes_nothing(tmp_path):
    url = os.environ["DATABASE_URL"]
    var = str(tmp_path)
    cases = [
        {"DATABASE_REPLICA_URL": url, "GREENKPI_VAR_DIR": var},
        {"DATABASE_REPLICA_URL": "", "GREENKPI_VAR_DIR": var},
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
            "DATABASE_REPLICA_URL": url,
            "GREENKPI_VAR_DIR": var,
        },
    ]
    with ThreadPoolExecutor(3) as pool:  # three Django start-ups at once
        on, off, sqlite = pool.map(lambda env: settings_of(**env), cases)
    assert on.returncode == 0, on.stderr
    assert on.stdout.strip() == (
        "['default', 'replica'] ['greenkpi.lib.replica.PrimaryReplicaRouter'] "
        "greenkpi.lib.replica.ReplicaReadsMiddleware"
    )
    assert off.returncode == 0, off.stderr
    assert off.stdout.startswith("['default'] []")
    assert sqlite.returncode != 0 and "DATABASE_REPLICA_URL needs PostgreSQL" in sqlite.stderr
