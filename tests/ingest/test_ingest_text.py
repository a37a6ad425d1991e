"""A NUL character (U+0000) in any string of a batch is a 400 naming the field, never a 500.

PostgreSQL text cannot hold it; Schemathesis found a hostname with one answering 500.
"""

from __future__ import annotations

import pytest

from greenkpi.ingest.models import Sample
from greenkpi.inventory.models import Host

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("where", "pointer"),
    [
        (lambda b: b["host"].update(hostname="gpu\x0001"), "/host/hostname"),
        (lambda b: b["samples"][0].update(device_uuid="GPU-\x00"), "/samples/0/device_uuid"),
    ],
)
def test_a_nul_character_in_a_string_is_a_400_with_its_pointer(
    acme_token, make_batch, post_batch, where, pointer
):
    _, secret = acme_token
    batch = make_batch(devices=1, windows=1)
    where(batch)
    hosts_before = Host.objects.count()

    response = post_batch(secret, batch)

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["pointer"] == pointer
    assert Sample.objects.count() == 0
    assert Host.objects.count() == hosts_before


def test_an_escaped_backslash_before_u0000_is_not_a_nul(acme_token, make_batch, post_batch):
    _, secret = acme_token
    batch = make_batch(devices=1, windows=1)
    batch["host"]["hostname"] = "gpu\\u0000"  # the six characters \u0000, not a NUL

    assert post_batch(secret, batch).status_code == 201
