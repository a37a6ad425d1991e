from __future__ import annotations

from greenkpi.inventory.models import CollectorToken
from greenkpi.inventory.selectors import collector_token_authenticate
from greenkpi.lib import tokens


def test_generated_tokens_parse_and_typos_do_not():
    value, parts = tokens.generate()
    assert value.startswith("gkc_")
    assert tokens.parse(value) == parts
    typo = value[:10] + ("A" if value[10] != "A" else "B") + value[11:]
    assert tokens.parse(typo) is None
    assert tokens.parse(value[:-1]) is None
    assert tokens.parse("") is None


def test_only_a_hash_of_the_secret_is_stored(acme_token, django_assert_num_queries):
    token, secret = acme_token
    parts = tokens.parse(secret)
    row = CollectorToken.objects.get(pk=token.pk)
    assert row.prefix == parts.prefix
    stored_values = " ".join(str(v) for v in CollectorToken.objects.values().get().values())
    assert parts.secret not in stored_values
    assert row.secret_hash == tokens.hash_secret(parts.secret)


def test_a_malformed_token_costs_no_query(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert collector_token_authenticate("gkc_garbage") is None


def test_last_used_is_recorded_but_not_on_every_request(acme_token, django_assert_num_queries):
    token, secret = acme_token
    assert collector_token_authenticate(secret).pk == token.pk
    assert CollectorToken.objects.get(pk=token.pk).last_used_at is not None
    with django_assert_num_queries(1):  # the lookup only, no UPDATE within the resolution
        collector_token_authenticate(secret)


def test_the_lookup_loads_the_token_with_its_organisation_team_and_site(acme, acme_token):
    """One query reads the token and what ingest and the workload API use of it, each value as the
    ORM would convert it; a token without a default site has none; revoked and expired ones are
    not found."""
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    token, secret = acme_token
    expected = CollectorToken.objects.select_related(
        "organisation", "default_team", "default_site"
    ).get(pk=token.pk)
    with CaptureQueriesContext(connection) as queries:
        found = collector_token_authenticate(secret)
        assert found is not None
        assert found.organisation.slug == acme.slug
        assert found.default_team is not None and found.default_team.pk == acme.vision.pk
        assert found.default_site is None
    assert len(queries) == 2  # the lookup, and last_used_at recorded (first use)
    for field in CollectorToken._meta.concrete_fields:
        if field.attname != "last_used_at":
            assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    for name in ("organisation", "default_team"):
        for field in getattr(expected, name)._meta.concrete_fields:
            assert getattr(getattr(found, name), field.attname) == getattr(
                getattr(expected, name), field.attname
            ), (name, field.name)

    CollectorToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(1))
    assert collector_token_authenticate(secret) is None
    CollectorToken.objects.filter(pk=token.pk).update(
        expires_at=timezone.now() + timedelta(1), revoked_at=timezone.now()
    )
    assert collector_token_authenticate(secret) is None
    CollectorToken.objects.filter(pk=token.pk).update(revoked_at=None)
    assert collector_token_authenticate(secret).pk == token.pk
