"""Integrations fixtures: rollup rows written directly (the rollup itself is tested in tests/kpis)
and personal access tokens for the people of tests/conftest.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count

import pytest
from testsupport.rollup_rows import hourly_row

from greenkpi.inventory.models import Device, Host
from greenkpi.kpis.models import HourlyRollup

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
    return hourly_row(
        org,
        hour,
        device=device,
        team=team,
        model_key=model_key,
        run_key=run_key,
        energy_kwh=energy_kwh,
        allocated_gpu_h=allocated_gpu_h,
        busy_gpu_h=busy_gpu_h,
        idle_gpu_h=idle_gpu_h,
        idle_energy_kwh=energy_kwh * idle_gpu_h / max(allocated_gpu_h, 1e-9),
        location_kg=location_kg,
        market_kg=market_kg,
        embodied_kgco2e=embodied_kg,
        cost=cost,
        currency=currency,
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
