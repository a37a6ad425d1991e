"""Integrations fixtures: rollup rows written directly (the rollup itself is tested in tests/kpis)
and personal access tokens for the people of tests/conftest.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count

import pytest

from greenkpi.carbon.methodology import METHODOLOGY_VERSION
from greenkpi.inventory.models import Device, Host
from greenkpi.kpis.models import HourlyRollup, RollupWindow

_uuids = count(1)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_gpu(org, hostname: str) -> Device:
    host, _ = Host.objects.get_or_create(organisation=org, hostname=hostname)
    return Device.objects.create(host=host, kind="gpu", uuid=f"GPU-{hostname}-{next(_uuids)}")


def add_rollup(
    org,
    hour: datetime,
    *,
    device: Device,
    team=None,
    model_key: str = "",
    run_key: str = "",
    energy_kwh: float = 1.0,
    location_kg: float = 0.0,
    market_kg: float = 0.0,
    embodied_kg: float = 0.0,
    allocated_gpu_h: float = 1.0,
    busy_gpu_h: float = 0.5,
    idle_gpu_h: float = 0.25,
    cost: float | None = None,
    currency: str = "",
) -> HourlyRollup:
    RollupWindow.objects.get_or_create(
        organisation=org,
        hour=hour,
        defaults={"version": 1, "computed_version": 1, "computed_at": hour + timedelta(hours=1)},
    )
    return HourlyRollup.objects.create(
        organisation=org,
        hour=hour,
        device=device,
        device_kind=device.kind,
        host=device.host,
        team=team,
        model_key=model_key,
        run_key=run_key,
        samples=60,
        covered_s=allocated_gpu_h * 3600,
        energy_kwh=energy_kwh,
        estimated_energy_kwh=0.0,
        pue=1.0,
        facility_energy_kwh=energy_kwh,
        allocated_gpu_h=allocated_gpu_h,
        busy_gpu_h=busy_gpu_h,
        util_known_gpu_h=allocated_gpu_h,
        idle_gpu_h=idle_gpu_h,
        idle_energy_kwh=energy_kwh * idle_gpu_h / max(allocated_gpu_h, 1e-9),
        intensity_g_per_kwh=0.0,
        intensity_source="annual",
        intensity_zone="FR",
        market_g_per_kwh=0.0,
        market_source="location",
        operational_location_kgco2e=location_kg,
        operational_market_kgco2e=market_kg,
        embodied_kgco2e=embodied_kg,
        cost=cost,
        currency=currency,
        methodology_version=METHODOLOGY_VERSION,
    )


@pytest.fixture
def rollups():
    class Helpers:
        gpu = staticmethod(make_gpu)
        add = staticmethod(add_rollup)

    return Helpers


@pytest.fixture
def pat():
    """pat(user, org, access="read", teams=(), days=30) -> the token string."""
    from django.utils import timezone

    from greenkpi.integrations.tokens import token_create

    def make(user, org, access: str = "read", teams=(), days: float = 30) -> str:
        _, value = token_create(
            user=user,
            organisation=org,
            name=f"{user.username}-{access}",
            access=access,
            expires_at=timezone.now() + timedelta(days=days),
            teams=list(teams),
        )
        return value

    return make


def bearer(value: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {value}"}


@pytest.fixture
def auth():
    return bearer
