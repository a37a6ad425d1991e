"""Checklist scenario 24 (issue 17): no task is scheduled beyond the broker's visibility
timeout, or Redis redelivers it, again and again. The test scans every task call in the code for
a countdown or ETA and checks each one's bound."""

from __future__ import annotations

import ast
from pathlib import Path
from unittest import mock

from django.conf import settings

from greenkpi.lib import retry

ROOT = Path(__file__).resolve().parents[1] / "greenkpi"
# Every call that passes a countdown or eta, and what bounds it (reviewed: add new ones here).
KNOWN = {
    ("alerts/grouping.py", "countdown", "bounded_countdown(countdown)"),
    ("alerts/tasks.py", "countdown", "bounded_countdown(result.retry_in_s)"),
    ("integrations/tasks.py", "countdown", "bounded_countdown(result.retry_in_s)"),
    # A constant (40 s after a time-zone change): bounded below, in the visibility-timeout test.
    ("kpis/signals.py", "countdown", "daily.REBUILD_DELAY_S"),
}


def delayed_calls() -> set[tuple[str, str, str]]:
    """(file, countdown/eta, the value's source) for every keyword argument and every options
    dict entry named countdown or eta in the code."""
    found = set()
    for path in ROOT.rglob("*.py"):
        name = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                pairs = [(k.arg, k.value) for k in node.keywords if k.arg]
            elif isinstance(node, ast.Dict):
                pairs = [
                    (k.value, v)
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)
                ]
            else:
                continue
            for key, value in pairs:
                if key in ("countdown", "eta"):
                    found.add((name, key, ast.unparse(value)))
    return found


def test_every_countdown_in_the_code_is_a_known_bounded_one():
    calls = delayed_calls()
    assert not [c for c in calls if c[1] == "eta"], "ETAs cannot be bounded here: use countdown"
    assert calls == KNOWN, f"review the bound of every new delayed task call: {calls ^ KNOWN}"


def test_the_bounds_hold_under_the_configured_visibility_timeout(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 7200}
    assert retry.bounded_countdown(10 * 3600) == 3600
    assert retry.bounded_countdown(30) == 30
    assert retry.bounded_countdown(-5) == 0
    # The zone-change rebuild's fixed delay, Celery's own backoff and the outbox's resend backoff
    # stay under it too.
    from greenkpi.kpis import daily

    assert retry.visibility_timeout_s() > daily.REBUILD_DELAY_S
    assert retry.RETRY_POLICY["retry_backoff_max"] < retry.visibility_timeout_s()
    from greenkpi.lib.outbox import backoff_s

    assert max(backoff_s(n) for n in range(1, 50)) < retry.visibility_timeout_s()


def test_a_group_wait_of_hours_is_dispatched_within_the_timeout(settings):
    """group_wait_s is an unbounded PositiveIntegerField: a 5 h wait must not become a 5 h
    countdown (the periodic evaluation sends the group when it is due)."""
    from greenkpi.alerts import grouping

    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 7200}
    with mock.patch.object(grouping, "task") as task:
        grouping.dispatch_flush(42, countdown=5 * 3600)
    options = task.return_value.apply_async.call_args.kwargs
    assert options["countdown"] <= 3600


def test_the_configured_visibility_timeout_is_what_the_bound_reads():
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    expected = float(options.get("visibility_timeout", retry.DEFAULT_VISIBILITY_TIMEOUT_S))
    assert retry.visibility_timeout_s() == expected
