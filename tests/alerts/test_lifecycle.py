"""The state machine on its own: pending -> firing after `for`, resolve, repeat, silence, no data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from greenkpi.alerts.lifecycle import (
    Action,
    Event,
    Observation,
    OpenAlert,
    State,
    silence_matches,
    step,
)

T0 = datetime(2026, 5, 11, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
LABELS = {"rule": "1", "host": "gpu-1"}


def seen(fp: str = "a", labels=LABELS) -> dict[str, Observation]:
    return {fp: Observation(fp, labels, 1.0, "silent")}


def pending(since=T0, fp="a") -> dict[str, OpenAlert]:
    return {fp: OpenAlert(fp, State.PENDING, since, since, None, LABELS)}


def firing(since=T0, notified=T0, last_active=None, fp="a") -> dict[str, OpenAlert]:
    return {fp: OpenAlert(fp, State.FIRING, since, last_active or notified, notified, LABELS)}


def run(open_alerts, observed, now, **kw):
    kw = {"for_s": 300, "repeat_s": 4 * 3600} | kw
    return [
        (t.action, t.notify)
        for t in step(open_alerts=open_alerts, observed=observed, now=now, **kw)
    ]


def test_a_new_condition_is_pending_and_fires_once_for_has_elapsed():
    assert run({}, seen(), T0) == [(Action.OPEN, None)]
    assert run(pending(), seen(), T0 + 4 * MIN) == [(Action.KEEP, None)]
    assert run(pending(), seen(), T0 + 5 * MIN) == [(Action.FIRE, Event.FIRING)]


def test_with_no_for_duration_it_fires_at_once():
    assert run({}, seen(), T0, for_s=0) == [(Action.OPEN_FIRING, Event.FIRING)]


def test_a_condition_gone_before_for_is_dropped_without_a_word():
    assert run(pending(), {}, T0 + 2 * MIN) == [(Action.DROP, None)]


def test_a_firing_alert_resolves_once_with_one_notification():
    assert run(firing(), {}, T0 + 10 * MIN) == [(Action.RESOLVE, Event.RESOLVED)]


def test_a_firing_alert_repeats_only_after_the_repeat_interval():
    assert run(firing(), seen(), T0 + 3 * 60 * MIN) == [(Action.KEEP, None)]
    assert run(firing(), seen(), T0 + 4 * 60 * MIN) == [(Action.REPEAT, Event.FIRING)]


def test_a_silence_suppresses_firing_repeat_and_resolve_but_not_the_state():
    quiet = {"silenced": lambda labels: labels.get("host") == "gpu-1"}
    assert run(pending(), seen(), T0 + 5 * MIN, **quiet) == [(Action.FIRE, None)]
    assert run(firing(), seen(), T0 + 5 * 60 * MIN, **quiet) == [(Action.KEEP, None)]
    assert run(firing(), {}, T0 + 10 * MIN, **quiet) == [(Action.RESOLVE, None)]


def test_when_a_silence_expires_a_still_firing_alert_is_notified_and_a_never_notified_one_resolves_quietly():
    assert run(firing(notified=None), seen(), T0 + 10 * MIN) == [(Action.NOTIFY, Event.FIRING)]
    assert run(firing(notified=None, last_active=T0), {}, T0 + 10 * MIN) == [(Action.RESOLVE, None)]


def test_no_data_holds_the_state_instead_of_resolving():
    assert run(firing(), {}, T0 + 10 * MIN, unknown={"a"}) == [(Action.KEEP, None)]
    assert run(pending(), {}, T0 + 10 * MIN, unknown={"a"}) == [(Action.KEEP, None)]


def test_keep_firing_for_absorbs_a_flapping_condition():
    alerts = firing(last_active=T0 + 9 * MIN)
    assert run(alerts, {}, T0 + 10 * MIN, keep_firing_s=300) == [(Action.KEEP, None)]
    assert run(alerts, {}, T0 + 15 * MIN, keep_firing_s=300) == [(Action.RESOLVE, Event.RESOLVED)]


def test_transitions_cover_every_fingerprint_in_a_stable_order():
    observed = seen("b") | seen("c")
    result = step(open_alerts=firing(fp="a"), observed=observed, now=T0, for_s=0, repeat_s=60)
    assert [t.fingerprint for t in result] == ["a", "b", "c"]


def test_silence_matchers_are_label_equality_and_empty_matches_nothing():
    assert silence_matches({"host": "gpu-1"}, LABELS)
    assert not silence_matches({"host": "gpu-2"}, LABELS)
    assert not silence_matches({"host": "gpu-1", "team": "nlp"}, LABELS)
    assert not silence_matches({}, LABELS)
