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
