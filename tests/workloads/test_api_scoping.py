"""Who may read and write which model: the scoping matrix (docs/retraining.md, "API").

Alice is an Acme org admin, Victor views vision, Nina manages nlp, Gary is Globex's admin. A model
of a team you cannot see is 404, never 403; a viewer who can see it but not manage it gets 403;
collector tokens write inside their organisation and read nothing.
"""

from __future__ import annotations

import pytest

from greenkpi.workloads.models import Evaluation, MLModel

EVAL = {"metric": "accuracy", "value": 0.88, "window_end": "2026-03-01T00:00:00Z"}

READ = {
    # persona: (vision, nlp)
    "alice": (200, 200),
    "victor": (200, 404),
    "nina": (404, 200),
    "gary": (404, 404),
}
WRITE = {
    "alice": (201, 201),
    "victor": (403, 404),
    "nina": (404, 201),
    "gary": (404, 404),
}


@pytest.mark.parametrize("person", sorted(READ))
def test_people_read_only_the_models_of_teams_they_see(person, as_person, acme_models):
    caller = as_person(person)
    for team, expected in zip(("vision", "nlp"), READ[person], strict=True):
        model = acme_models[team]
        for path in ("", "runs/", "evaluations/", "retraining/", "carbon/"):
            response = caller.get(f"models/{model.pk}/{path}")
            assert response.status_code == expected, (person, team, path, response.content)


@pytest.mark.parametrize("person", sorted(WRITE))
def test_people_write_only_where_they_manage(person, as_person, acme_models):
    caller = as_person(person)
    for team, expected in zip(("vision", "nlp"), WRITE[person], strict=True):
        response = caller.post(f"models/{acme_models[team].pk}/evaluations/", EVAL)
        assert response.status_code == expected, (person, team, response.content)
    assert Evaluation.objects.count() == sum(1 for code in WRITE[person] if code == 201)


def test_a_collector_token_writes_in_its_organisation_and_reads_nothing(
    as_token, acme_token, acme_models
):
    caller = as_token(acme_token)
    for model in acme_models.values():
        assert caller.post(f"models/{model.pk}/evaluations/", EVAL).status_code == 201
        for path in ("", "runs/", "evaluations/", "retraining/", "carbon/"):
            response = caller.get(f"models/{model.pk}/{path}")
            assert response.status_code == 403, path
            assert "write-only" in response.json()["detail"]
    assert caller.get("models/").status_code == 403
    # Even a model that does not exist answers 403 to a read: nothing can be probed.
    assert caller.get("models/999999/").status_code == 403


def test_another_organisations_token_finds_nothing(as_token, globex_token, acme_models):
    caller = as_token(globex_token)
    model = acme_models["nlp"]
    assert caller.post(f"models/{model.pk}/evaluations/", EVAL).status_code == 404
    assert (
        caller.post(f"models/{model.pk}/runs/", {"key": "r1", "kind": "training"}).status_code
        == 404
    )
    assert caller.post("models/", {"team": "nlp", "key": "stolen"}).status_code == 404
    assert not MLModel.objects.filter(key="stolen").exists()
    assert Evaluation.objects.count() == 0


def test_a_token_registers_models_only_for_teams_of_its_organisation(
    as_token, acme_token, globex_token, acme
):
    acme_caller = as_token(acme_token)
    first = acme_caller.post("models/", {"team": "nlp", "key": "bert"})
    assert first.status_code == 201, first.content
    again = acme_caller.post("models/", {"team": "nlp", "key": "bert"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert acme_caller.post("models/", {"team": "research", "key": "x"}).status_code == 404
    assert acme_caller.post("models/", {"team": "ghost", "key": "x"}).status_code == 404
    # Asking for another organisation by slug does not help a token either.
    body = {"org": "globex", "team": "research", "key": "x"}
    assert acme_caller.post("models/", body).status_code == 404
    assert MLModel.objects.get(key="bert").owner is None


def test_people_register_models_where_they_manage(as_person, acme):
    assert as_person("nina").post("models/", {"team": "nlp", "key": "t5"}).status_code == 201
    assert as_person("nina").post("models/", {"team": "vision", "key": "t5"}).status_code == 404
    assert as_person("victor").post("models/", {"team": "vision", "key": "t5"}).status_code == 403
    body = {"org": "acme", "team": "vision", "key": "t5"}
    assert as_person("gary").post("models/", body).status_code == 404
    assert as_person("alice").post("models/", body).status_code == 201
    owner = MLModel.objects.get(team=acme.nlp, key="t5").owner
    assert owner.username == "nina"


def test_lists_show_only_visible_teams(as_person, acme_models):
    keys = {m["key"] for m in as_person("victor").get("models/").json()}
    assert keys == {"resnet50"}
    assert {m["key"] for m in as_person("alice").get("models/").json()} == {"resnet50", "bert"}
    assert as_person("gary").get("models/").json() == []
    assert as_person("gary").get("models/", org="acme").status_code == 404


def test_nobody_is_asked_to_authenticate(anonymous, acme_models):
    model = acme_models["nlp"]
    assert anonymous.get(f"models/{model.pk}/").status_code == 401
    assert anonymous.post(f"models/{model.pk}/evaluations/", EVAL).status_code == 401
    assert anonymous.post("models/", {"team": "nlp", "key": "x"}).status_code == 401


def test_runs_and_ids_of_another_model_are_not_found(as_person, acme_models):
    nina = as_person("nina")
    bert = acme_models["nlp"]
    run = nina.post(f"models/{bert.pk}/runs/", {"key": "r1", "kind": "training"}).json()
    alice = as_person("alice")
    # The run belongs to bert: closing it through resnet50's URL finds nothing.
    vision = acme_models["vision"]
    assert alice.post(f"models/{vision.pk}/runs/{run['id']}/close/", {}).status_code == 404
    assert nina.post(f"models/{bert.pk}/runs/{run['id']}/close/", {}).status_code == 200
