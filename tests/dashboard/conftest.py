"""A small measured fleet, posted through the real ingest API, and who should see which part of it.

Acme: host vision-1 (default team vision, no shares: all its energy is vision's), nlp-1 (default nlp,
nlp's model bert claims 9 of every 12 kJ), shared-1 (default nlp, but vision's resnet claims 10 of
every 12 kJ there, so vision members see that host too). Globex: globex-1.

Rollups (hourly, then daily) are computed after posting, as the beat would: pages read only them.

Energy in the fixture, per team: vision = 6 x 12 kJ (vision-1, today) + 6 x 12 kJ (vision-1, two
days ago) + 2 x 10 kJ (shared-1) = 164 kJ; nlp = 3 x 12 kJ (nlp-1) + 2 x 2 kJ (shared-1) = 40 kJ;
research = 2 x 5 kJ = 10 kJ.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from greenkpi.inventory.models import Host

ENERGY_KJ = {"vision": 164.0, "nlp": 40.0, "research": 10.0}


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """The personas are created for every test; PBKDF2 at full strength costs ~0.4 s per user."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def compute_rollups(start: datetime, end: datetime) -> None:
    """What the beat does after ingest: hourly windows recomputed, then their days refreshed."""
    from greenkpi.kpis import daily, services

    services.windows_recompute(
        windows=services.backfill_windows(start=start, end=end), kind="backfill"
    )
    daily.days_refresh_stale()


@pytest.fixture
def rollups_now():
    """compute_rollups for tests that post more data after the fleet."""
    return compute_rollups


@dataclass
class Fleet:
    hosts: dict[str, Host]
    now: datetime
    energy_kj: dict[str, float]


@pytest.fixture
def fleet(acme, globex, people, make_batch, post_batch, globex_token) -> Fleet:
    from greenkpi.inventory.services import token_create

    _, vision_secret = token_create(organisation=acme, name="vision", default_team=acme.vision)
    _, nlp_secret = token_create(organisation=acme, name="nlp", default_team=acme.nlp)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    recent = now - timedelta(hours=2)
    bert = [
        {"energy_j": 9000.0, "method": "utilization", "team": "nlp", "model": "bert", "run": "r1"},
        {"energy_j": 3000.0, "method": "unattributed"},
    ]
    resnet = [
        {
            "energy_j": 10000.0,
            "method": "utilization",
            "team": "vision",
            "model": "resnet",
            "run": "r7",
        },
        {"energy_j": 2000.0, "method": "unattributed"},
    ]
    batches = [
        (vision_secret, make_batch(hostname="vision-1", devices=2, windows=3, start=recent)),
        (
            vision_secret,
            make_batch(hostname="vision-1", devices=2, windows=3, start=recent - timedelta(days=2)),
        ),
        (nlp_secret, make_batch(hostname="nlp-1", devices=1, windows=3, start=recent, shares=bert)),
        (
            nlp_secret,
            make_batch(hostname="shared-1", devices=1, windows=2, start=recent, shares=resnet),
        ),
        (
            globex_token[1],
            make_batch(hostname="globex-1", devices=1, windows=2, start=recent, energy_j=5000.0),
        ),
    ]
    for secret, body in batches:
        response = post_batch(secret, body)
        assert response.status_code == 201, response.content
    compute_rollups(now - timedelta(days=3), now + timedelta(hours=1))
    hosts = {h.hostname: h for h in Host.objects.all()}
    return Fleet(hosts=hosts, now=now, energy_kj=dict(ENERGY_KJ))
