"""CodeCarbon's emissions_endpoint: its real report shape in, delta windows per component out.

Reports are the fixtures in data/ (the exact shape of CodeCarbon 3.3.2 and of the older 2.2.0),
posted as CodeCarbon does: at the moment it takes its naive local timestamp. time_machine moves
the server clock to that moment, which is what lets the server place a naive local time.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import orjson
import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.db.models import Sum
from django.test import override_settings

from greenkpi.ingest.models import CodeCarbonRun, IngestBatch, Sample, SampleShare
from greenkpi.inventory.models import Device, Host

DATA = Path(__file__).parent / "data"
CURRENT = "codecarbon_3.3.2.json"
OLD = "codecarbon_2.2.0.json"
J = 3.6e6  # joules per kWh


def report(name: str = CURRENT, *, at: datetime, utc_offset_h: float = 0, **changes) -> dict:
    """A fixture report taken at ``at`` (UTC) on a client whose local time is UTC+offset."""
    body = json.loads((DATA / name).read_text())
    local = at.astimezone(UTC).replace(tzinfo=None) + timedelta(hours=utc_offset_h)
    body["timestamp"] = local.strftime("%Y-%m-%dT%H:%M:%S")  # what CodeCarbon sends
    body.update(changes)
    return body


@pytest.fixture
def post(client):
    """post(secret, body, at=..., query="") -> response, with the server clock at ``at``."""

    def send(secret: str, body, *, at: datetime, query: str = "", raw: bytes | None = None):
        payload = raw if raw is not None else json.dumps(body, allow_nan=False).encode()
        with time_machine.travel(at + timedelta(milliseconds=300), tick=False):
            return client.post(
                f"/api/v1/ingest/codecarbon/{secret}/{query}",
                payload,
                content_type="application/json",
            )

    return send


@pytest.fixture
def t0() -> datetime:
    # On an hour boundary: the runs of these tests (under an hour, after the first) then never
    # straddle one, so each is one stored window (hour pieces are tested on their own).
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


def energy_by_kind(org=None) -> dict[str, float]:
    rows = Sample.objects.all()
    if org is not None:
        rows = rows.filter(device__host__organisation=org)
    return dict(rows.values_list("device__kind").annotate(Sum("energy_j")))


def windows(kind: str) -> list[tuple[datetime, datetime]]:
    return list(
        Sample.objects.filter(device__kind=kind)
        .order_by("window_start")
        .values_list("window_start", "window_end")
    )


class TestTheCurrentRelease:
    def test_a_report_is_stored_as_one_window_per_component(self, acme, acme_token, post, t0):
        _, secret = acme_token
        response = post(secret, report(at=t0), at=t0)
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["stored"] is True
        assert body["reset"] is False
        assert energy_by_kind(acme) == pytest.approx(
            {"cpu": 0.0425 * J, "gpu": 1.1903 * J, "dram": 0.03 * J}, rel=1e-12
        )
        host = Host.objects.get(organisation=acme)
        assert host.hostname == "codecarbon-resnet50-imagenet"
        assert host.collector_version == "codecarbon/3.3.2"
        assert host.default_team == acme.vision
        devices = {d.kind: d for d in Device.objects.filter(host=host)}
        assert devices["gpu"].model_name == "4 x NVIDIA A100-SXM4-80GB"
        assert devices["cpu"].model_name == "AMD EPYC 7543 32-Core Processor"
        assert devices["dram"].uuid == "codecarbon:0c6b5a3e-7d1f-4f7e-9a52-3b1c7e9d2f10:ram"

    def test_the_window_is_the_run_and_longer_runs_are_cut_into_hours(self, acme_token, post, t0):
        _, secret = acme_token
        post(secret, report(at=t0), at=t0)
        gpu = windows("gpu")
        # 3600.48 s is longer than the 3600 s a window may last: two equal halves, no gap; each
        # is then stored cut at the hour boundaries it straddles (issue 14 item 7), its energy
        # split in proportion to time.
        first = t0 - timedelta(seconds=3600.482917)
        half = first + (t0 - first) / 2
        cuts = sorted(
            {first, half, t0}
            | {
                hour
                for hour in (first.replace(minute=0, second=0, microsecond=0) + timedelta(hours=h)
                             for h in (1, 2))
                if first < hour < t0
            }
        )  # fmt: skip
        assert gpu == list(pairwise(cuts))
        pieces = Sample.objects.filter(device__kind="gpu").order_by("window_start")
        for (start, end), energy_j in zip(
            gpu, pieces.values_list("energy_j", flat=True), strict=True
        ):
            share = (end - start) / (t0 - first)
            assert energy_j == pytest.approx(1.1903 * J * share, rel=1e-9)
        assert sum(pieces.values_list("energy_j", flat=True)) == pytest.approx(
            1.1903 * J, rel=1e-12
        )

    def test_methods_say_what_codecarbon_measured(self, acme_token, post, t0):
        _, secret = acme_token
        post(secret, report(at=t0), at=t0)
        methods = dict(Sample.objects.values_list("device__kind", "method").distinct())
        assert methods == {"gpu": "power_integral", "cpu": "estimate", "dram": "estimate"}
        gpu = Sample.objects.filter(device__kind="gpu").first()
        assert gpu.util_busy == pytest.approx(0.879)
        dram = Sample.objects.filter(device__kind="dram").first()
        assert dram.mem_total_bytes == int(503.5 * 2**30)
        assert dram.mem_used_bytes == int(107.2 * 2**30)

    def test_shares_attribute_it_to_team_project_run_and_tags(self, acme, acme_token, post, t0):
        _, secret = acme_token
        post(secret, report(at=t0), at=t0)
        shares = SampleShare.objects.all()
        assert shares.count() == Sample.objects.count() >= 6
        share = shares.first()
        assert share.team_id == acme.vision.pk
        assert share.model_key == "resnet50-imagenet"
        assert share.run_key == "0c6b5a3e-7d1f-4f7e-9a52-3b1c7e9d2f10"
        assert share.method == "declared"
        assert share.tags == {
            "source": "codecarbon",
            "experiment_id": "5b0fa12a-3dd7-45bb-9766-cc326314d9f1",
            "codecarbon_version": "3.3.2",
            "tracking_mode": "machine",
            "country_iso_code": "FRA",
            "country_name": "France",
            "region": "île-de-france",
            "on_cloud": "N",
            "os_user": "alice",
            "pue": "1",
        }
        total = SampleShare.objects.aggregate(s=Sum("energy_j"))["s"]
        assert total == pytest.approx((0.0425 + 1.1903 + 0.03) * J, rel=1e-12)

    def test_each_post_is_one_ingest_batch(self, acme_token, post, t0):
        _, secret = acme_token
        body = post(secret, report(at=t0), at=t0).json()
        batch = IngestBatch.objects.get()
        assert body["batch_id"] == batch.pk
        assert set(Sample.objects.values_list("batch_id", flat=True)) == {batch.pk}

    def test_pue_applied_by_codecarbon_is_divided_out(self, acme_token, post, t0):
        _, secret = acme_token
        post(secret, report(at=t0, pue=1.5, cpu_energy=0.15), at=t0)
        assert energy_by_kind()["cpu"] == pytest.approx(0.1 * J, rel=1e-12)


class TestAnOlderRelease:
    def test_a_2_2_report_without_newer_fields_is_accepted(self, acme, acme_token, post, t0):
        _, secret = acme_token
        response = post(secret, report(OLD, at=t0), at=t0)
        assert response.status_code == 201, response.content
        # No GPU on that machine: no GPU device; 1800 s fits one window.
        assert energy_by_kind(acme) == pytest.approx({"cpu": 0.02125 * J, "dram": 0.00294 * J})
        assert len(windows("cpu")) == 1
        tags = SampleShare.objects.first().tags
        assert tags["cloud_provider"] == "aws"
        assert tags["cloud_region"] == "us-east-1"
        assert tags["pue"] == "1"  # absent before 2.3: CodeCarbon applied none
        assert "experiment_id" not in tags
        assert Sample.objects.filter(device__kind="cpu").first().util_busy is None


def cumulative(at: datetime, duration: float, cpu: float, gpu: float, ram: float, **extra) -> dict:
    return report(at=at, duration=duration, cpu_energy=cpu, gpu_energy=gpu, ram_energy=ram, **extra)


class TestCumulativeSequences:
    def test_deltas_of_a_run_sum_to_its_final_totals(self, acme_token, post, t0):
        _, secret = acme_token
        steps = [(600, 0.01, 0.2, 0.005), (1200, 0.02, 0.41, 0.01), (1800, 0.03, 0.6, 0.015)]
        for seconds, cpu, gpu, ram in steps:
            at = t0 + timedelta(seconds=seconds)
            assert post(secret, cumulative(at, seconds, cpu, gpu, ram), at=at).status_code == 201
        assert energy_by_kind() == pytest.approx(
            {"cpu": 0.03 * J, "gpu": 0.6 * J, "dram": 0.015 * J}, rel=1e-9
        )
        gpu = windows("gpu")
        assert gpu == [
            (t0, t0 + timedelta(seconds=600)),
            (t0 + timedelta(seconds=600), t0 + timedelta(seconds=1200)),
            (t0 + timedelta(seconds=1200), t0 + timedelta(seconds=1800)),
        ]
        second = Sample.objects.get(device__kind="gpu", window_start=gpu[1][0])
        assert second.energy_j == pytest.approx(0.21 * J)
        assert second.util_busy is None  # CodeCarbon's mean is over the whole run, not this window

    def test_a_lost_post_is_healed_by_the_next(self, acme_token, post, t0):
        _, secret = acme_token
        post(
            secret,
            cumulative(t0 + timedelta(seconds=600), 600, 0.01, 0.2, 0.005),
            at=t0 + timedelta(seconds=600),
        )
        # The post at 1200 s never arrived (CodeCarbon does not retry).
        at = t0 + timedelta(seconds=1800)
        post(secret, cumulative(at, 1800, 0.03, 0.6, 0.015), at=at)
        assert energy_by_kind()["gpu"] == pytest.approx(0.6 * J)
        assert windows("gpu")[-1] == (t0 + timedelta(seconds=600), at)

    def test_a_replayed_post_stores_nothing_and_still_answers_201(self, acme_token, post, t0):
        _, secret = acme_token
        body = cumulative(t0 + timedelta(seconds=600), 600, 0.01, 0.2, 0.005)
        post(secret, body, at=t0 + timedelta(seconds=600))
        before = (Sample.objects.count(), IngestBatch.objects.count())
        # Replayed an hour later: the run's remembered UTC offset still maps it to the same time.
        again = post(secret, body, at=t0 + timedelta(seconds=4200))
        assert again.status_code == 201
        assert again.json()["stored"] is False
        assert again.json()["reason"] == "replay"
        assert (Sample.objects.count(), IngestBatch.objects.count()) == before
        assert CodeCarbonRun.objects.get().ignored_posts == 1

    def test_an_out_of_order_post_stores_nothing(self, acme_token, post, t0):
        _, secret = acme_token
        early = cumulative(t0 + timedelta(seconds=600), 600, 0.01, 0.2, 0.005)
        late = cumulative(t0 + timedelta(seconds=1200), 1200, 0.02, 0.4, 0.01)
        post(secret, report(at=t0, duration=1, cpu_energy=0, gpu_energy=0, ram_energy=0), at=t0)
        post(secret, late, at=t0 + timedelta(seconds=1200))
        response = post(secret, early, at=t0 + timedelta(seconds=1201))
        assert response.json()["reason"] == "replay"
        assert energy_by_kind()["gpu"] == pytest.approx(0.4 * J)

    def test_a_restarted_run_reusing_its_id_is_a_reset_never_negative(self, acme_token, post, t0):
        _, secret = acme_token
        post(
            secret,
            cumulative(t0 + timedelta(seconds=1200), 1200, 0.02, 0.4, 0.01),
            at=t0 + timedelta(seconds=1200),
        )
        # The process died and a new one started 1500 s in with the same run_id: totals restart.
        at = t0 + timedelta(seconds=1800)
        response = post(secret, cumulative(at, 300, 0.005, 0.1, 0.0025), at=at)
        assert response.json()["reset"] is True
        assert not Sample.objects.filter(energy_j__lt=0).exists()
        assert energy_by_kind()["gpu"] == pytest.approx(0.5 * J)
        assert windows("gpu")[-1] == (at - timedelta(seconds=300), at)
        assert CodeCarbonRun.objects.get().resets == 1

    def test_a_reset_never_overlaps_windows_already_stored(self, acme_token, post, t0):
        _, secret = acme_token
        post(
            secret,
            cumulative(t0 + timedelta(seconds=1200), 1200, 0.02, 0.4, 0.01),
            at=t0 + timedelta(seconds=1200),
        )
        at = t0 + timedelta(seconds=1300)
        post(secret, cumulative(at, 600, 0.005, 0.1, 0.0025), at=at)
        assert windows("gpu")[-1] == (t0 + timedelta(seconds=1200), at)
        assert energy_by_kind()["gpu"] == pytest.approx(0.5 * J)

    def test_a_tracker_stopped_and_started_again_keeps_counting(self, acme_token, post, t0):
        _, secret = acme_token
        post(
            secret,
            cumulative(t0 + timedelta(seconds=600), 600, 0.01, 0.2, 0.005),
            at=t0 + timedelta(seconds=600),
        )
        # tracker.stop(); tracker.start(): duration restarts, totals continue, same run_id.
        at = t0 + timedelta(seconds=1500)
        response = post(secret, cumulative(at, 300, 0.015, 0.3, 0.0075), at=at)
        assert response.json()["reset"] is False
        assert energy_by_kind()["gpu"] == pytest.approx(0.3 * J)

    def test_a_client_in_another_time_zone_is_placed_in_utc(self, acme_token, post, t0):
        _, secret = acme_token
        first = t0 + timedelta(seconds=600)
        post(secret, report(at=first, utc_offset_h=5.5, duration=600), at=first)
        assert windows("gpu")[-1][1] == first
        # A later post of the run keeps the offset learnt from the first.
        later = t0 + timedelta(seconds=1200)
        post(secret, report(at=later, utc_offset_h=5.5, duration=1200, gpu_energy=2.0), at=later)
        assert windows("gpu")[-1] == (first, later)
        assert CodeCarbonRun.objects.get().utc_offset_s == 5.5 * 3600

    def test_a_timestamp_with_an_offset_is_taken_as_is(self, acme_token, post, t0):
        _, secret = acme_token
        body = report(at=t0, duration=600)
        body["timestamp"] = (t0 + timedelta(hours=2)).replace(tzinfo=None).isoformat() + "+02:00"
        post(secret, body, at=t0 + timedelta(minutes=3))
        assert windows("gpu")[-1][1] == t0


class TestAttribution:
    def test_host_and_team_can_be_chosen_in_the_url(self, acme, acme_token, post, t0):
        _, secret = acme_token
        response = post(secret, report(at=t0), at=t0, query="?host=gpu-node-7&team=nlp")
        assert response.status_code == 201
        assert Host.objects.get().hostname == "gpu-node-7"
        assert set(SampleShare.objects.values_list("team_id", flat=True)) == {acme.nlp.pk}

    def test_another_orgs_team_is_refused(self, acme, globex, acme_token, post, t0):
        _, secret = acme_token
        response = post(secret, report(at=t0), at=t0, query="?team=research")
        assert response.status_code == 400
        assert response.json()["errors"][0]["pointer"] == "?team"
        assert not Sample.objects.exists()
        assert not CodeCarbonRun.objects.exists()

    def test_the_same_run_id_in_two_orgs_are_two_runs(
        self, acme, globex, acme_token, globex_token, post, t0
    ):
        post(acme_token[1], report(at=t0), at=t0)
        post(globex_token[1], report(at=t0, gpu_energy=2.0), at=t0)
        assert energy_by_kind(acme)["gpu"] == pytest.approx(1.1903 * J)
        assert energy_by_kind(globex)["gpu"] == pytest.approx(2.0 * J)
        assert CodeCarbonRun.objects.filter(organisation=acme).count() == 1
        globex_share = SampleShare.objects.filter(device__host__organisation=globex).first()
        assert globex_share.team_id == globex.research.pk


class TestRefusals:
    @pytest.mark.parametrize("secret", ["nope", "gkc_" + "x" * 40, ""])
    def test_an_unknown_or_malformed_token_is_404(self, acme, client, secret, t0):
        response = client.post(
            f"/api/v1/ingest/codecarbon/{secret}/", report(at=t0), content_type="application/json"
        )
        assert response.status_code == 404
        assert not Sample.objects.exists()

    def test_a_wrong_secret_behind_a_real_prefix_is_404(self, acme_token, post, t0):
        from greenkpi.lib import tokens

        row, _ = acme_token
        body = f"{tokens.MARKER}{row.prefix}_{'x' * tokens.SECRET_LEN}"
        forged = body + tokens._checksum(body)
        assert tokens.parse(forged) is not None  # well-formed, so the database is consulted
        assert post(forged, report(at=t0), at=t0).status_code == 404
        assert not Sample.objects.exists()

    def test_a_revoked_token_is_refused_and_nothing_stored(self, acme_token, post, t0):
        from greenkpi.inventory.services import token_revoke

        row, secret = acme_token
        token_revoke(token=row)
        response = post(secret, report(at=t0), at=t0)
        assert response.status_code == 404
        assert response["Content-Type"] == "application/problem+json"
        assert not Sample.objects.exists()
        assert not CodeCarbonRun.objects.exists()

    @pytest.mark.parametrize(
        ("changes", "pointers"),
        [
            ({"gpu_energy": -0.5}, ["/gpu_energy"]),
            ({"cpu_energy": "0.1"}, ["/cpu_energy"]),
            ({"duration": None, "run_id": ""}, ["/run_id", "/duration"]),
            ({"timestamp": "yesterday"}, ["/timestamp"]),
            ({"pue": 0}, ["/pue"]),
            ({"gpu_power": -3.0, "user": 7}, ["/gpu_power", "/user"]),
            ({"ram_energy": 1e30}, ["/ram_energy"]),
        ],
    )
    def test_bad_fields_are_400_with_pointers(self, acme_token, post, t0, changes, pointers):
        _, secret = acme_token
        response = post(secret, report(at=t0, **changes), at=t0)
        assert response.status_code == 400
        assert response["Content-Type"] == "application/problem+json"
        assert sorted(e["pointer"] for e in response.json()["errors"]) == sorted(pointers)
        assert not Sample.objects.exists()

    @pytest.mark.parametrize(
        ("changes", "pointer"),
        [
            ({"project_name": "resnet\x0050"}, "/project_name"),
            ({"run_id": "run-\x00"}, "/run_id"),
            ({"gpu_model": "A100\x00"}, "/gpu_model"),
            ({"user": "\x00"}, "/user"),
        ],
    )
    def test_a_nul_character_is_a_400_naming_the_field(
        self, acme_token, post, t0, changes, pointer
    ):
        """PostgreSQL text cannot hold U+0000: on PG these were 500s at the INSERT."""
        _, secret = acme_token
        response = post(secret, report(at=t0, **changes), at=t0)
        assert response.status_code == 400, response.content
        assert response["Content-Type"] == "application/problem+json"
        assert [e["pointer"] for e in response.json()["errors"]] == [pointer]
        assert not Sample.objects.exists()
        assert not CodeCarbonRun.objects.exists()

    def test_a_nul_character_in_the_team_or_host_is_a_400(self, acme_token, post, t0):
        _, secret = acme_token
        response = post(secret, report(at=t0), at=t0, query="?team=vision%00")
        assert response.status_code == 400, response.content
        assert response.json()["errors"][0]["pointer"] == "?team"
        assert post(secret, report(at=t0), at=t0, query="?host=gpu%0001").status_code == 400
        assert not Sample.objects.exists()

    def test_missing_fields_are_named(self, acme_token, post, t0):
        _, secret = acme_token
        body = report(at=t0)
        del body["run_id"], body["ram_energy"]
        errors = post(secret, body, at=t0).json()["errors"]
        assert {e["pointer"] for e in errors} == {"/run_id", "/ram_energy"}

    def test_nan_and_infinity_are_refused(self, acme_token, post, t0):
        _, secret = acme_token
        for literal in (b"NaN", b"Infinity", b"1e999"):
            raw = (
                json.dumps(report(at=t0))
                .encode()
                .replace(b'"gpu_energy": 1.1903', b'"gpu_energy": ' + literal)
            )
            response = post(secret, None, at=t0, raw=raw)
            assert response.status_code == 400, literal
        assert not Sample.objects.exists()

    def test_nan_reaching_the_parser_is_named(self):
        from greenkpi.ingest.codecarbon_report import parse_report
        from greenkpi_schema import ValidationFailed

        body = report(at=datetime.now(UTC), cpu_energy=float("nan"), duration=float("inf"))
        with pytest.raises(ValidationFailed) as caught:
            parse_report(body)
        assert {e.pointer for e in caught.value.errors} == {"/cpu_energy", "/duration"}

    def test_a_clock_further_off_than_any_time_zone_is_400(self, acme_token, post, t0):
        _, secret = acme_token
        response = post(secret, report(at=t0, utc_offset_h=-20), at=t0)
        assert response.status_code == 400
        assert response.json()["errors"][0]["pointer"] == "/timestamp"

    def test_a_body_that_is_not_an_object_or_too_big(self, acme_token, post, t0):
        _, secret = acme_token
        assert post(secret, None, at=t0, raw=b"[1, 2]").status_code == 400
        assert post(secret, None, at=t0, raw=b"{" + b" " * 70_000 + b"}").status_code == 413

    def test_the_rate_limit_is_the_tokens_own(self, acme_token, post, post_batch, make_batch):
        _, secret = acme_token
        # All three requests inside one minute of the per-token window.
        at = datetime.now(UTC).replace(second=10, microsecond=0) - timedelta(minutes=1)
        cache.clear()
        try:
            with override_settings(INGEST_RATE_PER_MINUTE=2):
                with time_machine.travel(at, tick=False):
                    assert post_batch(secret, make_batch(windows=1, devices=1)).status_code == 201
                assert post(secret, report(at=at), at=at).status_code == 201
                second = at + timedelta(seconds=5)
                limited = post(secret, report(at=second), at=second)
            assert limited.status_code == 429
            assert "Retry-After" in limited
            assert Sample.objects.filter(device__kind="gpu", window_end=second).count() == 0
        finally:
            cache.clear()


def test_the_endpoint_is_in_the_openapi_schema(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = orjson.loads(response.content)
    operation = schema["paths"]["/api/v1/ingest/codecarbon/{token}/"]["post"]
    assert operation["operationId"] == "ingest_codecarbon"
    assert "201" in operation["responses"]


def post_like_codecarbon(url: str, payload: dict) -> int:
    """What ``requests.post(url, json=payload, timeout=10)`` sends (requests is not a dependency
    here): a JSON body dumped with allow_nan=False and Content-Type: application/json."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, allow_nan=False).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": "python-requests/2.32.3"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.django_db(transaction=True)
def test_a_real_http_post_through_a_live_server(live_server, acme, acme_token):
    _, secret = acme_token
    now = datetime.now(UTC)
    url = f"{live_server.url}/api/v1/ingest/codecarbon/{secret}/"
    assert post_like_codecarbon(url, report(at=now)) == 201
    assert energy_by_kind(acme)["gpu"] == pytest.approx(1.1903 * J)
    stored = Sample.objects.count()
    assert stored >= 6  # 3 devices x 2 halves, more where a half straddles an hour
    assert post_like_codecarbon(url, report(at=now)) == 201  # CodeCarbon's flush twice a second
    assert Sample.objects.count() == stored
    assert (
        post_like_codecarbon(f"{live_server.url}/api/v1/ingest/codecarbon/nope/", report(at=now))
        == 404
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_of_one_run_count_its_energy_once(acme, acme_token, t0):
    """Four clients race to post the same sequence (replays included): the row lock makes the
    deltas add up to the final totals exactly once."""
    if connection.vendor != "postgresql":
        pytest.skip("needs DATABASE_URL=postgres://... (a skip fails the run under CI=true)")
    from django.test import Client

    _, secret = acme_token
    bodies = []
    for s in (600, 1200, 1800, 2400):
        body = cumulative(t0, s, 0.01 * s / 600, 0.2 * s / 600, 0.005 * s / 600)
        # Explicit UTC times: this test is about the lock, not about placing local time.
        body["timestamp"] = (t0 + timedelta(seconds=s)).isoformat()
        bodies.append(body)
    errors: list[str] = []

    def worker() -> None:
        client = Client()
        for body in bodies:
            response = client.post(
                f"/api/v1/ingest/codecarbon/{secret}/", body, content_type="application/json"
            )
            if response.status_code != 201:
                errors.append(response.content.decode())
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert energy_by_kind()["gpu"] == pytest.approx(0.8 * J, rel=1e-9)
    assert CodeCarbonRun.objects.get().posts + CodeCarbonRun.objects.get().ignored_posts == 16
