"""The one Celery retry policy: every retrying task retries exactly the transient errors."""

from __future__ import annotations

from celery import current_app
from django.db import IntegrityError, InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from greenkpi.lib.retry import RETRY_POLICY, TRANSIENT_ERRORS, UpstreamServerError, retrying_task


def test_only_connection_failures_and_server_errors_count_as_transient():
    assert set(TRANSIENT_ERRORS) == {
        OperationalError,
        InterfaceError,
        RedisConnectionError,
        RedisTimeoutError,
        UpstreamServerError,
    }
    # Bad data and bugs are never retried blindly.
    assert not any(
        issubclass(IntegrityError, e) or issubclass(ValueError, e) for e in TRANSIENT_ERRORS
    )
    assert str(UpstreamServerError(503, "busy")) == "HTTP 503: busy"


def test_task_options_ack_late_and_may_add_but_keep_the_policy():
    options = retrying_task(bind=True)
    assert options["acks_late"] is True and options["bind"] is True
    assert {k: options[k] for k in RETRY_POLICY} == RETRY_POLICY


def test_every_greenkpi_task_that_retries_uses_the_shared_policy():
    current_app.loader.import_default_modules()  # autodiscover every app's tasks module
    retrying = {
        name: task
        for name, task in current_app.tasks.items()
        if name.startswith("greenkpi.") and getattr(task, "autoretry_for", ())
    }
    assert len(retrying) >= 8  # kpis (2 + daily), alerts (5), workloads (1)
    for name, task in retrying.items():
        assert tuple(task.autoretry_for) == TRANSIENT_ERRORS, name
        assert task.max_retries == RETRY_POLICY["max_retries"], name
        assert task.retry_backoff_max == RETRY_POLICY["retry_backoff_max"], name
