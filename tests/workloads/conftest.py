"""Helpers for registry tests: an API caller per persona and per collector token."""

from __future__ import annotations

import orjson
import pytest
from django.test import Client


class Caller:
    """A persona (logged-in user), a collector token, or nobody, calling the registry API."""

    def __init__(self, client: Client, secret: str | None = None):
        self.client = client
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret else {}

    def get(self, path: str, **params):
        return self.client.get(f"/api/v1/{path}", params, **self.headers)

    def post(self, path: str, body: dict):
        return self.client.post(
            f"/api/v1/{path}", orjson.dumps(body), content_type="application/json", **self.headers
        )


@pytest.fixture
def as_person(people):
    def make(name: str) -> Caller:
        client = Client()
        client.force_login(people[name])
        return Caller(client)

    return make


@pytest.fixture
def as_token():
    def make(token) -> Caller:
        _, secret = token
        return Caller(Client(), secret)

    return make


@pytest.fixture
def anonymous():
    return Caller(Client())


@pytest.fixture
def acme_models(acme):
    """One model per Acme team, with a deployed version."""
    from greenkpi.workloads import services

    out = {}
    for team, key in ((acme.vision, "resnet50"), (acme.nlp, "bert")):
        model, _ = services.model_register(team=team, key=key)
        services.version_register(model=model, version="1", baseline_value=0.9, deploy=True)
        out[team.slug] = model
    return out
