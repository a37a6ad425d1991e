"""The ingestion contract, through the Django test client (runs on SQLite and PostgreSQL)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from django.test import override_settings

from greenkpi.ingest.models import IngestBatch, Sample, SampleShare
from greenkpi.inventory.models import Device, Host


def stored(org=None):
    samples = Sample.objects.all()
    if org is not None:
        samples = samples.filter(device__host__organisation=org)
    return samples.count()


class TestAcceptsAValidBatch:
    def test_stores_every_window_and_registers_host_and_devices(
        self, acme, acme_token, post_batch, make_batch
    ):
        _, secret = acme_token
        response = post_batch(secret, make_batch(devices=2, windows=3))
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["accepted"] == 6
        assert body["duplicates"] == 0
        host = Host.objects.get(pk=body["host_id"])
        assert host.organisation == acme
        assert host.hostname == "gpu-node-1"
        assert host.default_team == acme.vision  # from the token
        assert host.collector_version == "test"
        assert abs(host.clock_skew_s) < 30
        devices = Device.objects.filter(host=host)
        assert {d.model_name for d in devices} == {"NVIDIA H100 80GB HBM3"}
        assert {d.power_limit_w for d in devices} == {700}
        assert stored(acme) == 6

    def test_values_are_stored_as_sent(self, acme_token, post_batch, make_batch):
        _, secret = acme_token
        batch = make_batch(devices=1, windows=1, energy_j=1234.5)
        post_batch(secret, batch)
        sample = Sample.objects.get()
        sent = batch["samples"][0]
        assert sample.energy_j == 1234.5
        assert sample.method == "counter"
        assert sample.window_start == datetime.fromisoformat(sent["start"])
        assert sample.window_end - sample.window_start == timedelta(seconds=60)
        assert sample.util_busy == 0.75
        assert sample.mem_total_bytes == 80 * 2**30

    def test_shares_are_stored_with_team_resolved_in_the_token_org(
        self, acme, acme_token, post_batch, make_batch
    ):
        _, secret = acme_token
        shares = [
            {
                "energy_j": 9000.0,
                "team": "nlp",
                "model": "bert",
                "run": "r-7",
                "method": "utilization",
                "pid": 42,
                "tags": {"stage": "train"},
            },
            {"energy_j": 3000.0, "method": "unattributed"},
        ]
        response = post_batch(secret, make_batch(devices=1, windows=2, shares=shares))
        assert response.status_code == 201, response.content
        rows = list(SampleShare.objects.order_by("window_start", "position"))
        assert len(rows) == 4
        assert rows[0].team_id == acme.nlp.pk
        assert (rows[0].model_key, rows[0].run_key, rows[0].pid, rows[0].tags) == (
            "bert",
            "r-7",
            42,
            {"stage": "train"},
        )
        assert rows[1].team_id is None and rows[1].method == "unattributed"

    def test_gzip_bodies_are_accepted(self, acme_token, post_batch, make_batch):
        _, secret = acme_token
        response = post_batch(
            secret, gzip.compress(orjson.dumps(make_batch())), HTTP_CONTENT_ENCODING="gzip"
        )
        assert response.status_code == 201, response.content
        assert stored() == 6

    def test_non_utc_offsets_are_converted(self, acme_token, post_batch, make_batch):
        _, secret = acme_token
        batch = make_batch(devices=1, windows=1)
        start = datetime.fromisoformat(batch["samples"][0]["start"])
        batch["samples"][0]["start"] = start.astimezone(
            __import__("zoneinfo").ZoneInfo("Asia/Kolkata")
        ).isoformat()
        assert post_batch(secret, batch).status_code == 201
        assert Sample.objects.get().window_start == start


class TestIdempotency:
    def test_a_replay_writes_nothing_and_answers_as_the_first_time(
        self, acme_token, post_batch, make_batch
    ):
        _, secret = acme_token
        body = orjson.dumps(make_batch())
        first = post_batch(secret, body, key="batch-1")
        again = post_batch(secret, body, key="batch-1")
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again["Idempotent-Replayed"] == "true"
        assert stored() == 6
        assert IngestBatch.objects.count() == 1

    def test_the_same_key_with_another_body_is_refused(self, acme_token, post_batch, make_batch):
        _, secret = acme_token
        post_batch(secret, make_batch(hostname="a"), key="k")
        response = post_batch(secret, make_batch(hostname="b"), key="k")
        assert response.status_code == 422
        assert response["Content-Type"] == "application/problem+json"
        assert not Host.objects.filter(hostname="b").exists()

    def test_samples_resent_under_a_new_key_are_duplicates(
        self, acme_token, post_batch, make_batch
    ):
        _, secret = acme_token
        batch = make_batch(windows=3, shares=[{"energy_j": 12000.0, "team": "vision"}])
        post_batch(secret, batch, key="one")
        # Overlap: the last window again plus a new one.
        later = make_batch(
            windows=2,
            start=datetime.fromisoformat(batch["samples"][-1]["start"]),
            shares=[{"energy_j": 12000.0, "team": "vision"}],
        )
        response = post_batch(secret, later, key="two")
        assert response.status_code == 201
        assert (response.json()["accepted"], response.json()["duplicates"]) == (2, 2)
        assert stored() == 8
        assert SampleShare.objects.count() == 8

    def test_a_missing_key_is_a_clear_400(self, acme_token, post_batch, make_batch):
        _, secret = acme_token
        response = post_batch(secret, make_batch(), key=False)
        assert response.status_code == 400
        assert "Idempotency-Key" in response.json()["detail"]
        assert stored() == 0

    def test_replays_are_answered_even_after_the_windows_aged_past_the_limit(
        self, acme_token, post_batch, make_batch
    ):
        _, secret = acme_token
        body = orjson.dumps(make_batch())
        post_batch(secret, body, key="old")
        with override_settings(INGEST_MAX_AGE_DAYS=0.0001):
            assert post_batch(secret, body, key="old").status_code == 201

    def test_expired_keys_are_released_but_samples_stay_deduplicated(
        self, acme_token, post_batch, make_batch
    ):
        from greenkpi.ingest.services import idempotency_keys_expire

        _, secret = acme_token
        body = orjson.dumps(make_batch())
        post_batch(secret, body, key="k")
        assert idempotency_keys_expire(now=datetime.now(UTC) + timedelta(days=8)) == 1
        response = post_batch(secret, body, key="k")
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response
        assert response.json()["duplicates"] == 6
        assert stored() == 6


def problems(response):
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 400
    return {(e["pointer"], e["code"]) for e in body["errors"]}


class TestRejectsBadInput:
    """Every class of bad input gets a 400 naming the field and sample; nothing is stored."""

    @pytest.mark.parametrize(
        ("field", "value", "code"),
        [
            ("energy_j", "12", "type"),
            ("energy_j", -1.0, "range"),
            ("energy_j", True, "type"),
            ("energy_j", None, "type"),
            ("util_busy", 1.5, "range"),
            ("power_avg_w", -3, "range"),
            ("mem_used_bytes", 1.5, "type"),
            ("method", "guess", "choice"),
            ("device_kind", "tpu", "choice"),
            ("device_uuid", "", "required"),
            ("start", "yesterday", "time"),
            ("start", "2026-01-01T00:00:00", "time"),  # naive: no time zone
            ("idle_s", 61.0, "range"),
        ],
    )
    def test_bad_field(self, acme_token, post_batch, make_batch, field, value, code):
        _, secret = acme_token
        batch = make_batch(devices=1, windows=3)
        batch["samples"][2][field] = value
        assert problems(post_batch(secret, batch)) == {(f"/samples/2/{field}", code)}
        assert stored() == 0

    def test_nan_and_infinity_are_refused(self, acme_token, post_batch, make_batch):
        _, secret = acme_token
        body = orjson.dumps(make_batch(devices=1, windows=1)).replace(
            b'"energy_j":12000.0', b'"energy_j":NaN'
        )
        response = post_batch(secret, body)
        assert response.status_code == 400
        assert response.json()["type"].endswith("/json")
        body = orjson.dumps(make_batch(devices=1, windows=1)).replace(
            b'"energy_j":12000.0', b'"energy_j":1e999'
        )
        assert post_batch(secret, body).status_code == 400
        assert stored() == 0

    def test_end_before_start(self, acme_token, post_batch, make_batch):
        _, secret = acme_token
        batch = make_batch(devices=1, windows=1)
        sample = batch["samples"][0]
        sample["start"], sample["end"] = sample["end"], sample["start"]
        assert ("/samples/0/end", "order") in problems(post_batch(secret, batch))

    def test_windows_longer_than_the_maximum(self, acme_token, post_batch, make_batch):
        _, secret = acme_token
        with override_settings(INGEST_MAX_WINDOW_S=30.0):
            assert problems(post_batch(secret, make_batch(devices=1, windows=1))) == {
                ("/samples/0/end", "window_too_long")
            }

    def test_timestamps_more_than_ten_minutes_in_the_future(
        self, acme_token, post_batch, make_batch
    ):
        _, secret = acme_token
        future = datetime.now(UTC) + timedelta(minutes=10)
        assert problems(post_batch(secret, make_batch(devices=1, windows=1, start=future))) == {
            ("/samples/0/end", "future_timestamp")
        }
        near = datetime.now(UTC) + timedelta(minutes=8)
        assert post_batch(secret, make_batch(devices=1, windows=1, start=near)).status_code == 201

    def test_unknown_schema_version(self, acme_token, post_batch, make_batch):
        _, secret = acme_token
        batch = make_batch()
        batch["schema_version"] = 99
        assert problems(post_batch(secret, batch)) == {("/schema_version", "unsupported_version")}

    def test_shares_that_do_not_sum_to_the_window(self, acme_token, post_batch, make_batch):
        _, secret = acme_token
        batch = make_batch(devices=1, windows=1, shares=[{"energy_j": 100.0, "team": "vision"}])
        assert problems(post_batch(secret, batch)) == {("/samples/0/shares", "sum")}

    def test_duplicate_windows_inside_one_batch(self, acme_token, post_batch, make_batch):
        _, secret = acme_token
        batch = make_batch(devices=1, windows=2)
        batch["samples"][1]["start"] = batch["samples"][0]["start"]
        assert ("/samples/1/start", "duplicate") in problems(post_batch(secret, batch))

    def test_every_problem_is_listed_with_its_sample_index(
        self, acme_token, post_batch, make_batch
    ):
        _, secret = acme_token
        batch = make_batch(devices=1, windows=5)
        batch["samples"][1]["energy_j"] = -5
        batch["samples"][4]["method"] = "?"
        body = post_batch(secret, batch).json()
        assert [(e["sample_index"], e["pointer"]) for e in body["errors"]] == [
            (1, "/samples/1/energy_j"),
            (4, "/samples/4/method"),
        ]

    def test_malformed_json_and_wrong_shapes(self, acme_token, post_batch):
        _, secret = acme_token
        assert post_batch(secret, b"{not json").status_code == 400
        assert problems(post_batch(secret, b"[]")) == {("", "type")}
        assert ("/samples", "type") in problems(
            post_batch(secret, {"schema_version": 1, "host": {"hostname": "h"}, "samples": {}})
        )

    def test_corrupt_gzip(self, acme_token, post_batch):
        _, secret = acme_token
        response = post_batch(secret, b"\x1f\x8b not really gzip", HTTP_CONTENT_ENCODING="gzip")
        assert response.status_code == 400
        assert response.json()["type"].endswith("/encoding")

    def test_unsupported_content_encoding(self, acme_token, post_batch, make_batch):
        _, secret = acme_token
        assert post_batch(secret, make_batch(), HTTP_CONTENT_ENCODING="br").status_code == 400


class TestSizeLimits:
    def test_too_many_samples_is_413(self, acme_token, post_batch, make_batch):
        _, secret = acme_token
        with override_settings(INGEST_MAX_SAMPLES=5):
            response = post_batch(secret, make_batch(devices=2, windows=3))
        assert response.status_code == 413
        assert "split" in response.json()["detail"]
        assert stored() == 0

    def test_too_many_bytes_is_413(self, acme_token, post_batch, make_batch):
        _, secret = acme_token
        body = orjson.dumps(make_batch())
        with override_settings(INGEST_MAX_BODY_BYTES=len(body) - 1):
            assert post_batch(secret, body).status_code == 413
        with override_settings(INGEST_MAX_BODY_BYTES=len(body)):
            assert post_batch(secret, body).status_code == 201

    def test_a_gzip_bomb_is_413_after_decompression(self, acme_token, post_batch):
        _, secret = acme_token
        bomb = gzip.compress(b'{"schema_version":1,"pad":"' + b"0" * 5_000_000 + b'"}')
        assert len(bomb) < 10_000
        with override_settings(INGEST_MAX_BODY_BYTES=1_000_000):
            response = post_batch(secret, bomb, HTTP_CONTENT_ENCODING="gzip")
        assert response.status_code == 413
        assert "decompressed" in response.json()["detail"]


class TestTenancy:
    def test_the_org_comes_from_the_token(self, acme, globex, globex_token, post_batch, make_batch):
        _, secret = globex_token
        post_batch(secret, make_batch(hostname="shared-name"))
        host = Host.objects.get()
        assert host.organisation == globex
        assert stored(acme) == 0

    def test_naming_another_orgs_team_is_rejected(
        self, acme, globex, acme_token, post_batch, make_batch
    ):
        _, secret = acme_token
        batch = make_batch(devices=1, windows=1, shares=[{"energy_j": 12000.0, "team": "research"}])
        assert problems(post_batch(secret, batch)) == {("/samples/0/shares/0/team", "unknown_team")}
        assert stored() == 0

    def test_same_hostname_in_two_orgs_are_two_hosts(
        self, acme_token, globex_token, post_batch, make_batch
    ):
        post_batch(acme_token[1], make_batch(hostname="node"))
        post_batch(globex_token[1], make_batch(hostname="node"))
        assert Host.objects.filter(hostname="node").count() == 2
        assert stored() == 12

    def test_idempotency_keys_are_per_org(self, acme_token, globex_token, post_batch, make_batch):
        post_batch(acme_token[1], make_batch(hostname="a"), key="same")
        response = post_batch(globex_token[1], make_batch(hostname="b"), key="same")
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response


class TestAuthentication:
    @pytest.mark.parametrize("header", ["", "Bearer", "Bearer nope", "Token gkc_x", "Bearer a b"])
    def test_missing_or_malformed_credentials_are_401(self, client, make_batch, header, acme):
        extra = {"HTTP_AUTHORIZATION": header} if header else {}
        response = client.post(
            "/api/v1/ingest/",
            orjson.dumps(make_batch()),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="k",
            **extra,
        )
        assert response.status_code == 401
        assert response["Content-Type"] == "application/problem+json"
        assert stored() == 0

    def test_a_revoked_token_is_refused_at_once(self, acme_token, post_batch, make_batch):
        from greenkpi.inventory.services import token_revoke

        token, secret = acme_token
        assert post_batch(secret, make_batch(windows=1)).status_code == 201
        token_revoke(token=token)
        assert post_batch(secret, make_batch(windows=1, hostname="x")).status_code == 401

    def test_an_expired_token_is_refused(self, acme_token, post_batch, make_batch):
        token, secret = acme_token
        token.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        token.save()
        assert post_batch(secret, make_batch()).status_code == 401

    def test_a_token_with_a_wrong_secret_is_refused(self, acme_token, post_batch, make_batch):
        from greenkpi.lib import tokens

        token, _ = acme_token
        forged_body = f"{tokens.MARKER}{token.prefix}_{'x' * tokens.SECRET_LEN}"
        forged = forged_body + tokens._checksum(forged_body)
        assert tokens.parse(forged) is not None  # well-formed, so the DB is consulted
        assert post_batch(forged, make_batch()).status_code == 401

    def test_a_collector_token_cannot_read_anything(self, client, acme_token):
        _, secret = acme_token
        auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
        assert client.get("/api/v1/ingest/", **auth).status_code in (401, 403, 405)
        assert client.get("/admin/", **auth).status_code == 302  # to the login page

    def test_the_api_schema_is_public_documentation(self, client):
        assert client.get("/api/schema/").status_code == 200


class TestClockSkew:
    def test_skew_is_measured_from_x_sent_at_when_a_retry_carries_an_old_body_clock(
        self, acme_token, post_batch, make_batch
    ):
        _, secret = acme_token
        batch = make_batch()
        batch["host"]["clock"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        response = post_batch(secret, batch, HTTP_X_SENT_AT=datetime.now(UTC).isoformat())
        assert abs(response.json()["clock_skew_s"]) < 30
        assert response.json()["warnings"] == []
        assert abs(Host.objects.get().clock_skew_s) < 30

    def test_a_host_clock_an_hour_off_is_flagged(self, acme_token, post_batch, make_batch):
        _, secret = acme_token
        batch = make_batch()
        batch["host"]["clock"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        body = post_batch(secret, batch).json()
        assert 3590 < body["clock_skew_s"] < 3700
        assert "NTP" in body["warnings"][0]
