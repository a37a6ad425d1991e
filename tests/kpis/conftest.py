"""Helpers for rollup tests: samples go in through the real ingest service (HTTP API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from greenkpi.kpis.services import hour_floor


@pytest.fixture
def hour() -> datetime:
    """A whole UTC hour three hours ago: old enough to be complete, young enough to ingest."""
    return hour_floor(datetime.now(UTC) - timedelta(hours=3))


@pytest.fixture
def ingest(post_batch, make_batch):
    """ingest(secret, start=..., site=..., **make_batch kwargs) -> response JSON, asserting 201."""

    def send(secret: str, *, site: str | None = None, tweak=None, **kwargs):
        body = make_batch(**kwargs)
        if site is not None:
            body["host"]["site"] = site
        if tweak is not None:
            for sample in body["samples"]:
                tweak(sample)
        response = post_batch(secret, body)
        assert response.status_code == 201, response.content
        return response.json()

    return send
