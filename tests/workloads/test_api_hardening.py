"""Issue 17 regressions on the registry API: every bad input is a problem+json 4xx naming the
field (never a 500), numbers are bounded by their columns, and an id tells nothing about other
organisations."""

from __future__ import annotations

import pytest

from greenkpi.workloads.models import DriftReport, Evaluation

WINDOW_END = "2026-12-06T16:00:00Z"


@pytest.fixture
def alice(as_person):
    return as_person("alice")


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


@pytest.mark.parametrize(
    ("features", "pointer"),
    [
        (["x"], "/features/0"),
        ([{"feature": "a", "value": 0.1}, {"value": 0.1}], "/features/1/feature"),
        (
            [{"feature": "a", "reference_counts": ["lots"], "current_counts": [1]}],
            "/features/0/reference_counts/0",
        ),
    ],
)
def test_nested_errors_are_problem_details_with_json_pointers(
    alice, acme_models, features, pointer
):
    model = acme_models["vision"]
    response = alice.post(
        f"models/{model.pk}/drift-reports/", {"window_end": WINDOW_END, "features": features}
    )
    body = _problem(response, 400)
    assert pointer in [e["pointer"] for e in body["errors"]], body
    assert all(isinstance(e["detail"], str) and e["code"] for e in body["errors"])
    assert DriftReport.objects.count() == 0


def test_a_policy_error_points_into_the_policy(alice, acme):
    body = {"team": "vision", "key": "m", "policy": {"persistence_evaluations": 0}}
    problem = _problem(alice.post("models/", body), 400)
    assert [e["pointer"] for e in problem["errors"]] == ["/policy/persistence_evaluations"]


@pytest.mark.parametrize(
    ("path", "body", "pointer"),
    [
        ("evaluations/", {"metric": "f1", "value": 0.9, "samples": 2**40}, "/samples"),
        ("evaluations/", {"metric": "f1", "value": 1e309, "samples": 1}, "/value"),
        ("evaluations/", {"metric": "f1", "value": 0.9, "run": 2**63}, "/run"),
    ],
)
def test_numbers_beyond_their_column_are_400_not_500(alice, acme_models, path, body, pointer):
    model = acme_models["vision"]
    response = alice.post(f"models/{model.pk}/{path}", {**body, "window_end": WINDOW_END})
    problem = _problem(response, 400)
    assert pointer in [e["pointer"] for e in problem["errors"]], problem
    assert Evaluation.objects.count() == 0


def test_a_policy_number_beyond_its_column_is_400(alice, acme):
    body = {"team": "vision", "key": "m", "policy": {"max_age_days": 1e308 * 10}}
    response = alice.post("models/", body)
    assert response.status_code == 400, response.content


def test_a_huge_path_id_is_404_not_500(alice, acme_models):
    model = acme_models["vision"]
    assert alice.get(f"models/{2**70}/").status_code == 404
    assert alice.get(f"models/{model.pk}/runs/{2**70}/").status_code in (404, 405)
    response = alice.post(f"models/{model.pk}/runs/{2**70}/close/", {})
    assert response.status_code == 404, response.content


def test_another_organisations_model_and_an_unknown_id_give_the_same_404(
    as_person, as_token, globex_token, acme_models
):
    acme_id = acme_models["vision"].pk
    unknown = acme_id + 10_000
    for caller in (as_person("gary"), as_token(globex_token)):
        for path, method in (("", "get"), ("evaluations/", "post")):
            answers = []
            for model_id in (acme_id, unknown):
                if method == "get" and caller.headers:
                    continue  # tokens read nothing: 403 before any look-up (tested elsewhere)
                call = getattr(caller, method)
                response = (
                    call(f"models/{model_id}/{path}")
                    if method == "get"
                    else call(
                        f"models/{model_id}/{path}",
                        {"metric": "f1", "value": 1, "window_end": WINDOW_END},
                    )
                )
                answers.append((response.status_code, response.json()))
            if answers:
                assert answers[0] == answers[1], (caller.headers, path, answers)
                assert answers[0][0] == 404


def test_a_nul_byte_in_a_query_slug_is_404_not_500(alice, acme_models):
    """Found by Schemathesis: PostgreSQL refuses NUL bytes in text, so they must not reach it."""
    assert alice.get("models/summary/", team="vi\x00sion").status_code == 404
    assert alice.get("models/summary/", org="ac\x00me").status_code == 404
    assert alice.get("models/", org="ac\x00me").status_code == 404
