"""Retraining-need alerts: a model going *retrain recommended* fires one notification per channel
(email with the components, a signed webhook to a local receiver), back to healthy resolves once;
overdue is the same alert at higher severity; one organisation's rule never sees another's models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
import time_machine

from greenkpi.alerts import evaluation, outbox, services
from greenkpi.alerts.channels import webhook
from greenkpi.alerts.models import Alert, AlertRule, Channel, Notification, RuleKind
from greenkpi.inventory.services import user_create
from greenkpi.workloads import retraining
from greenkpi.workloads import services as registry

T0 = datetime(2026, 5, 11, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MIN = timedelta(minutes=1)


def model_for(team, key: str = "bert"):
    """Baseline 0.90, default floor 0.81 (10 % relative fall), deployed 30 days before T0."""
    model, _ = registry.model_register(team=team, key=key)
    version, _ = registry.version_register(
        model=model, version="1", baseline_value=0.90, trained_at=T0 - 30 * DAY, deploy=True
    )
    return model, version


def evaluate_model(model, version, values, at):
    """One evaluation per day up to ``at``, then the assessment recomputed at ``at``."""
    for i, value in enumerate(values):
        registry.evaluation_create(
            model=model,
            version=version,
            metric="accuracy",
            value=value,
            window_end=at - (len(values) - i) * timedelta(hours=1),
        )
    return retraining.assessment_recompute(model=model, now=at)


def evaluate_rules(at, org=None):
    with time_machine.travel(at, tick=False):
        return evaluation.rules_evaluate(organisation_id=org.pk if org else None)


def send_all(at):
    with time_machine.travel(at, tick=False):
        return [
            outbox.notification_send(notification_id=str(n.pk)).status
            for n in Notification.objects.filter(status="pending").order_by("created_at")
        ]


@pytest.fixture
def root(db):
    """A superuser: only they may point a webhook at a private (here loopback) address."""
    return user_create(username="root", password="x" * 20, is_superuser=True, email="root@x.test")


@pytest.fixture
def channels(acme, root, receiver):
    mail = Channel.objects.create(
        organisation=acme,
        name="ml mail",
        kind="email",
        addresses="ml@acme.test",
        group_wait_s=0,
        group_interval_s=0,
    )
    hook = services.channel_create(
        organisation=acme,
        user=root,
        name="ml hook",
        kind="webhook",
        url=receiver.url,
        allow_private_network=True,
    )
    Channel.objects.filter(pk=hook.pk).update(group_wait_s=0, group_interval_s=0)
    hook.refresh_from_db()
    return mail, hook


def retraining_rule(org, channels=(), **kw) -> AlertRule:
    rule = AlertRule.objects.create(
        organisation=org,
        name=kw.pop("name", "retraining"),
        kind=RuleKind.RETRAINING_NEED,
        for_s=0,
        **kw,
    )
    rule.channels.set(channels)
    return rule


def test_a_model_going_recommended_fires_once_with_its_components_and_resolves_once_when_healthy(
    acme, people, channels, receiver, mailoutbox
):
    people["nina"].email = "nina@acme.test"  # manager of nlp, the model's team
    people["nina"].save()
    _mail, hook = channels
    rule = retraining_rule(acme, channels)
    model, version = model_for(acme.nlp)
    model.min_gain_per_kgco2e = 0.002
    model.save()
    # 0.84 three times: s_perf = (0.90 - 0.84) / (0.90 - 0.81) = 0.6667 >= enter 0.6, k = 3.
    row = evaluate_model(model, version, [0.84, 0.84, 0.84], T0)
    assert row.verdict == "recommended"

    evaluate_rules(T0)
    (alert,) = Alert.objects.filter(rule=rule)
    assert (alert.state, alert.team_id, alert.value) == (
        "firing",
        acme.nlp.pk,
        pytest.approx(2 / 3),
    )
    assert alert.labels == {
        "rule": str(rule.pk),
        "kind": "retraining_need",
        "team": "nlp",
        "model": "nlp/bert",
        "severity": "warning",
    }
    notes = alert.annotations
    assert notes["components"] == {
        "need": pytest.approx(0.666667),
        "performance": pytest.approx(0.666667),
        "drift": 0.0,
        "staleness": pytest.approx(30 / 180, abs=1e-6),
    }
    assert notes["cost_test"]["result"] == "cost unknown"  # no measured past training run
    assert notes["model_url"].endswith(f"/models/{model.pk}/")
    assert Notification.objects.filter(event="firing").count() == 2  # email + webhook
    assert send_all(T0) == ["sent", "sent"]

    (mail_msg,) = mailoutbox
    assert mail_msg.subject == "[GreenKPI] [FIRING:1] retraining"
    assert sorted(mail_msg.to) == ["ml@acme.test", "nina@acme.test"]
    body = mail_msg.body
    assert "Model nlp/bert: retrain recommended, need 0.67" in body
    assert "performance 0.666667 (accuracy 0.84, baseline 0.9, floor 0.81)" in body
    assert "drift       0.0" in body and "staleness   0.166667" in body
    assert "Cost test: cost unknown" in body
    assert f"/models/{model.pk}/" in body
    html, _ = mail_msg.alternatives[0]
    assert "Staleness" in html and "Open the model" in html

    ((_, headers, raw),) = receiver.requests
    assert webhook.verify(secret=hook.secret, headers=headers, body=raw)
    payload = orjson.loads(raw)
    assert payload["type"] == "alert.firing"
    (line,) = payload["alerts"]
    assert line["labels"]["severity"] == "warning"
    assert line["annotations"]["components"]["performance"] == pytest.approx(0.666667)
    assert line["annotations"]["verdict"] == "recommended"

    evaluate_rules(T0 + MIN)  # still recommended: nothing new
    assert Notification.objects.count() == 2

    # A retrained model is deployed back at its baseline: R = 0, healthy.
    row = evaluate_model(model, version, [0.90], T0 + 2 * DAY)
    assert row.verdict == "healthy"
    evaluate_rules(T0 + 2 * DAY)
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert Notification.objects.filter(event="resolved").count() == 2
    assert send_all(T0 + 2 * DAY) == ["sent", "sent"]
    assert len(mailoutbox) == 2 and "RESOLVED: Model nlp/bert" in mailoutbox[1].body
    assert orjson.loads(receiver.requests[1][2])["type"] == "alert.resolved"
    evaluate_rules(T0 + 2 * DAY + MIN)
    assert Notification.objects.count() == 4


def test_overdue_is_the_same_alert_at_critical_severity(acme, channels):
    rule = retraining_rule(acme)
    model, version = model_for(acme.vision, key="resnet50")
    evaluate_model(model, version, [0.84, 0.84, 0.84], T0)
    evaluate_rules(T0)
    (alert,) = Alert.objects.filter(rule=rule)
    fingerprint = alert.fingerprint
    assert alert.labels["severity"] == "warning"

    row = evaluate_model(model, version, [0.80], T0 + DAY)  # at or past the floor 0.81
    assert row.verdict == "overdue"
    evaluate_rules(T0 + DAY)
    (alert,) = Alert.objects.filter(rule=rule)
    assert alert.fingerprint == fingerprint and alert.state == "firing"
    assert alert.labels["severity"] == "critical"
    assert alert.annotations["verdict"] == "overdue"
    assert "retrain overdue" in alert.summary and alert.team_id == acme.vision.pk


def test_a_watch_model_raises_nothing_and_rules_see_only_their_organisation_and_team(acme, globex):
    acme_rule = retraining_rule(acme)
    nlp_rule = retraining_rule(acme, team=acme.nlp, name="nlp only")
    globex_rule = retraining_rule(globex)
    vision, v1 = model_for(acme.vision, key="resnet50")
    nlp, n1 = model_for(acme.nlp)
    research, r1 = model_for(globex.research, key="gpt")
    evaluate_model(vision, v1, [0.84, 0.84, 0.84], T0)  # recommended
    evaluate_model(nlp, n1, [0.87], T0)  # s_perf 0.333: watch
    assert evaluate_model(research, r1, [0.80], T0).verdict == "overdue"

    evaluate_rules(T0, org=acme)
    assert [a.labels["model"] for a in Alert.objects.filter(rule=acme_rule)] == ["vision/resnet50"]
    assert not Alert.objects.filter(rule=nlp_rule).exists()  # nlp's model only watches
    assert not Alert.objects.filter(rule=globex_rule).exists()  # not evaluated for acme
    evaluate_rules(T0)
    assert [a.labels["model"] for a in Alert.objects.filter(rule=globex_rule)] == ["research/gpt"]
    assert {a.organisation_id for a in Alert.objects.filter(rule=acme_rule)} == {acme.pk}
    assert Alert.objects.filter(rule=acme_rule).count() == 1  # Globex's model never in Acme's
