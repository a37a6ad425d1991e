"""Identity mappings: the precedence rules (pure) and their validation (docs/kpis.md,
"Attribution precedence")."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from greenkpi.inventory.attribution import Identity, resolve, rules_from
from greenkpi.inventory.mappings import mapping_save
from greenkpi.inventory.models import RUN_KINDS, IdentityMappingChange
from greenkpi.workloads.models import RunKind

JOB = Identity(
    cluster="hpc",
    user="nina",
    account="nlp-lab",
    job_name="llm-pretrain-7b",
    comment="greenkpi:model=bert",
)


def rule(id, kind, pattern, **kw):
    return {"id": id, "kind": kind, "pattern": pattern, **kw}


def test_a_user_mapping_beats_an_account_mapping_of_equal_priority():
    rules = rules_from(
        [rule(1, "slurm-account", "nlp-lab", team_id=10), rule(2, "slurm-user", "nina", team_id=20)]
    )
    assert resolve(JOB, rules).team_id == 20


def test_priority_beats_specificity_and_a_cluster_specific_mapping_beats_an_any_cluster_one():
    rules = rules_from(
        [
            rule(1, "slurm-account", "nlp-lab", team_id=10, priority=5),
            rule(2, "slurm-user", "nina", team_id=20),
        ]
    )
    assert resolve(JOB, rules).team_id == 10
    rules = rules_from(
        [
            rule(1, "slurm-account", "nlp-lab", team_id=10),
            rule(2, "slurm-account", "nlp-lab", team_id=30, cluster="hpc"),
            rule(3, "slurm-account", "nlp-lab", team_id=40, cluster="other"),
        ]
    )
    assert resolve(JOB, rules).team_id == 30


def test_a_comment_pattern_beats_a_job_name_pattern_and_a_model_group_names_the_model():
    rules = rules_from(
        [
            rule(1, "slurm-job-name", "^llm-pretrain", model_key="llm-7b", run_kind="training"),
            rule(2, "slurm-comment", r"greenkpi:model=(?P<model>[\w.-]+)"),
        ]
    )
    got = resolve(JOB, rules)
    assert (got.model_key, got.run_kind, got.team_id) == ("bert", "training", None)
    assert resolve(Identity(job_name="llm-pretrain-x"), rules).model_key == "llm-7b"
    assert resolve(Identity(job_name="other"), rules).model_key == ""


def test_exact_kinds_match_whole_values_only():
    rules = rules_from([rule(1, "slurm-account", "nlp", team_id=10)])
    assert resolve(JOB, rules).team_id is None


@pytest.mark.parametrize(
    ("kind", "pattern", "field"),
    [
        ("slurm-job-name", "train-(", "pattern"),
        ("slurm-comment", "[", "pattern"),
        ("slurm-account", "", "pattern"),
        ("slurm-partition", "gpu", "kind"),
        ("slurm-account", "nlp-lab", "team"),  # sets nothing
    ],
)
def test_a_bad_mapping_is_refused_naming_the_field_and_records_no_change(
    acme, kind, pattern, field
):
    with pytest.raises(ValidationError) as caught:
        mapping_save(organisation=acme, kind=kind, pattern=pattern)
    assert field in caught.value.message_dict
    assert not IdentityMappingChange.objects.exists()


def test_a_team_of_another_organisation_is_refused(acme, globex):
    with pytest.raises(ValidationError) as caught:
        mapping_save(organisation=acme, kind="slurm-account", pattern="x", team=globex.research)
    assert "team" in caught.value.message_dict


def test_an_edit_records_the_old_and_the_new_spec(acme):
    mapping = mapping_save(organisation=acme, kind="slurm-account", pattern="a", team=acme.nlp)
    mapping_save(
        organisation=acme, mapping=mapping, kind="slurm-account", pattern="b", team=acme.nlp
    )
    assert list(IdentityMappingChange.objects.order_by("id").values_list("pattern", flat=True)) == [
        "a",
        "a",
        "b",
    ]


def test_the_run_kinds_a_mapping_may_give_are_the_registrys():
    assert [value for value, _ in RUN_KINDS] == list(RunKind.values)


def test_the_admin_refuses_a_bad_regex_on_its_field_and_saves_through_the_service(acme, client):
    from django.contrib.auth import get_user_model

    from greenkpi.inventory.models import IdentityMapping

    root = get_user_model().objects.create_superuser("root", "root@example.test", "pw-root-123")
    client.force_login(root)
    form = {
        "organisation": acme.pk,
        "kind": "slurm-job-name",
        "cluster": "",
        "pattern": "train-(",
        "team": "",
        "model_key": "m",
        "run_kind": "",
        "priority": 0,
        "note": "",
    }
    bad = client.post("/admin/inventory/identitymapping/add/", form)
    assert bad.status_code == 200  # the form again, with the error on its field
    assert "not a valid regular expression" in bad.content.decode()
    assert not IdentityMapping.objects.exists()
    good = client.post("/admin/inventory/identitymapping/add/", {**form, "pattern": "^train-"})
    assert good.status_code == 302
    mapping = IdentityMapping.objects.get()
    assert IdentityMappingChange.objects.filter(pattern="^train-").count() == 1
    client.post(f"/admin/inventory/identitymapping/{mapping.pk}/delete/", {"post": "yes"})
    assert not IdentityMapping.objects.exists()
    assert IdentityMappingChange.objects.filter(pattern="^train-").count() == 2
