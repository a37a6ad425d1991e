"""The alert state machine, Alertmanager-style, as one pure function; no Django.

Per fingerprint (a hash of organisation, rule and sorted labels):

    (no alert) --condition--> pending --held for `for`--> firing --condition gone--> resolved
                                 \\--condition gone--> dropped (never notified)

* One "firing" notification when an alert starts firing, one "resolved" when it resolves; while it
  keeps firing, a repeat every ``repeat_s`` after the last notification.
* A silenced alert still changes state but is not notified. A firing alert that was never notified
  (it fired under a silence that has since expired) is notified on the next evaluation; one that
  was never notified resolves silently.
* ``keep_firing_s``: a firing alert resolves only after its condition has been gone that long,
  so a flapping condition does not send a resolve/fire pair every evaluation.
* Unknown (partial data): an alert whose condition could not be judged keeps its state: missing
  data is not "resolved" and not "under budget". A label set with no data at all is handled by the
  evaluation per the rule's ``no_data`` (a separate NODATA alert, alerting, or OK).
* Who is told, when, and in which message is the business of ``grouping`` (group_wait,
  group_interval, repeat per group); ``notify`` here is the per-alert view, kept for the pure tests.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class State(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    # Grafana's NoData: the rule could not judge this label set for lack of data (rule.no_data =
    # "nodata"). Its own alert instance (labels + alertstate=nodata), never a firing one.
    NODATA = "nodata"


class Action(StrEnum):
    OPEN = "open"  # new alert, pending
    OPEN_FIRING = "open_firing"  # new alert, `for` is 0: firing at once
    FIRE = "fire"  # pending -> firing
    KEEP = "keep"  # unchanged state (value and summary refreshed)
    NOTIFY = "notify"  # firing, first notification (a silence expired)
    REPEAT = "repeat"  # firing, repeat interval elapsed
    RESOLVE = "resolve"  # firing -> resolved
    DROP = "drop"  # pending whose condition went away: forgotten, nobody was told


class Event(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"
    NODATA = "nodata"  # a group whose active alerts are all "no data"
    ERROR = "error"  # a rule's evaluation raised (sent once per error episode)
    DIGEST = "digest"  # the daily summary email


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """What the state machine needs to know of an alert that is pending or firing."""

    fingerprint: str
    state: State
    active_since: datetime
    last_active_at: datetime
    notified_at: datetime | None = None  # last firing notification (None: never notified)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observation:
    """A condition that holds now for one label set."""

    fingerprint: str
    labels: Mapping[str, str]
    value: float | None = None
    summary: str = ""
    annotations: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Transition:
    fingerprint: str
    action: Action
    notify: Event | None = None


def step(
    *,
    open_alerts: Mapping[str, OpenAlert],
    observed: Mapping[str, Observation],
    now: datetime,
    for_s: float,
    repeat_s: float,
    keep_firing_s: float = 0.0,
    unknown: Collection[str] = (),
    silenced: Callable[[Mapping[str, str]], bool] = lambda labels: False,
) -> list[Transition]:
    """The transitions of one evaluation, sorted by fingerprint (deterministic)."""
    out: list[Transition] = []
    for fingerprint in sorted(set(open_alerts) | set(observed)):
        alert = open_alerts.get(fingerprint)
        seen = observed.get(fingerprint)
        labels = seen.labels if seen is not None else alert.labels if alert else {}
        quiet = silenced(labels)
        out.append(
            _one(
                fingerprint,
                alert,
                seen,
                fingerprint in unknown,
                quiet,
                now,
                for_s,
                repeat_s,
                keep_firing_s,
            )
        )
    return out


def _one(
    fingerprint: str,
    alert: OpenAlert | None,
    seen: Observation | None,
    unknown: bool,
    quiet: bool,
    now: datetime,
    for_s: float,
    repeat_s: float,
    keep_firing_s: float,
) -> Transition:
    fire = None if quiet else Event.FIRING
    if seen is not None:
        if alert is None:
            if for_s <= 0:
                return Transition(fingerprint, Action.OPEN_FIRING, fire)
            return Transition(fingerprint, Action.OPEN)
        if alert.state is State.PENDING:
            if now - alert.active_since >= timedelta(seconds=for_s):
                return Transition(fingerprint, Action.FIRE, fire)
            return Transition(fingerprint, Action.KEEP)
        if quiet:
            return Transition(fingerprint, Action.KEEP)
        if alert.notified_at is None:
            return Transition(fingerprint, Action.NOTIFY, Event.FIRING)
        if now - alert.notified_at >= timedelta(seconds=repeat_s):
            return Transition(fingerprint, Action.REPEAT, Event.FIRING)
        return Transition(fingerprint, Action.KEEP)
    assert alert is not None
    if unknown:
        return Transition(fingerprint, Action.KEEP)
    if alert.state is State.PENDING:
        return Transition(fingerprint, Action.DROP)
    if now - alert.last_active_at < timedelta(seconds=keep_firing_s):
        return Transition(fingerprint, Action.KEEP)
    told = alert.notified_at is not None and not quiet
    return Transition(fingerprint, Action.RESOLVE, Event.RESOLVED if told else None)


def silence_matches(matchers: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A silence matches when every one of its label matchers equals the alert's label.

    An empty matcher set matches nothing (a silence must say what it silences).
    """
    return bool(matchers) and all(labels.get(k) == str(v) for k, v in matchers.items())
